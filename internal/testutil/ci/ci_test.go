package ci_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/ci"
)

// recorder records how Required ended a test.
type recorder struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatal(args ...any)     { r.failed, r.msg = true, args[0].(string); runtime.Goexit() }
func (r *recorder) Skip(args ...any)      { r.skipped, r.msg = true, args[0].(string); runtime.Goexit() }
func (r *recorder) Fatalf(string, ...any) { panic("Required must call Fatal") }
func (r *recorder) Skipf(string, ...any)  { panic("Required must call Skip") }

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		ci   string
		fail bool
	}{
		{"", false}, {"0", false}, {"false", false}, {"FALSE", false},
		{"true", true}, {"1", true}, {"yes", true},
	} {
		t.Setenv("CI", tc.ci)
		if ci.Enabled() != tc.fail {
			t.Errorf("CI=%q: Enabled = %v", tc.ci, !tc.fail)
		}
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); ci.Required(r, "openssl is not on PATH") }()
		<-done
		if r.failed != tc.fail || r.skipped == tc.fail || !strings.Contains(r.msg, "openssl is not on PATH") {
			t.Errorf("CI=%q: failed %v, skipped %v, message %q", tc.ci, r.failed, r.skipped, r.msg)
		}
	}
}
