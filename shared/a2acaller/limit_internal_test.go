package a2acaller

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestLimitedBody(t *testing.T) {
	tests := []struct {
		name string
		size int
		want error
	}{
		{"under the bound", 10, nil},
		{"exactly the bound", 64, nil},
		{"over the bound", 65, errTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &limitedBody{ReadCloser: io.NopCloser(strings.NewReader(strings.Repeat("a", tc.size))), left: 64}
			got, err := io.ReadAll(b)
			if !errors.Is(err, tc.want) || (tc.want == nil && len(got) != tc.size) {
				t.Fatalf("read %d bytes, %v", len(got), err)
			}
		})
	}
}
