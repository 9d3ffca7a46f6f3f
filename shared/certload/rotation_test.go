package certload_test

import (
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// swappable is a Source whose bundle the test replaces.
type swappable struct{ b *certload.Bundle }

func (s *swappable) Bundle() *certload.Bundle { return s.b }

func TestRotationCheck(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	first := static(t, ca.Issue(t, "lambda"), ca.PEM, certload.UsageClient).Bundle()
	second := static(t, ca.Issue(t, "lambda"), ca.PEM, certload.UsageClient).Bundle()
	src := &swappable{b: first}
	var r certload.Rotation
	steps := []struct {
		name    string
		now     *certload.Bundle
		rotated bool
	}{
		{"first look", first, false},
		{"unchanged", first, false},
		{"new certificate", second, true},
		{"seen already", second, false},
		{"back to the first", first, true},
	}
	for _, st := range steps {
		src.b = st.now
		b, rotated := r.Check(src)
		if b != st.now || rotated != st.rotated {
			t.Fatalf("%s: rotated=%v, want %v", st.name, rotated, st.rotated)
		}
	}
}
