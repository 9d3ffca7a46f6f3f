package extractor_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor"
)

// reference is encoding/json's string encoding without HTML escaping.
func reference(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestJSONString(t *testing.T) {
	long := strings.Repeat("é\x01", 40<<10) // crosses chunk boundaries mid-rune and mid-escape
	for _, s := range []string{"", "plain", `"quoted" \back\`, "\n\r\t\b\f\x00\x1f\x7f", "<&>", "\u2028\u2029", "bad \xff\xfe utf8 \xe2\x82",
		"\ufffd kept", "日本語", long, strings.Repeat("x", 100<<10)} {
		got, err := extractor.JSONString(s)
		if err != nil {
			t.Fatal(err)
		}
		if want := reference(s); !bytes.Equal(got, want) {
			t.Errorf("%.40q:\n got %.80s\nwant %.80s", s, got, want)
		}
	}
}

func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "<\u2028\xff>", "\x01\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := extractor.JSONString(s)
		if err != nil {
			t.Fatal(err)
		}
		if want := reference(s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}
