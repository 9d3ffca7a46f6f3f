// Package ci decides, in one place, what a test does when something it
// needs is missing (a tool, a server, a kernel feature): under CI it fails,
// since a skipped check there would pass unseen; elsewhere it skips, loudly,
// saying what did not run.
//
// CI counts as set when the CI variable holds anything but "", "0" or
// "false" (any case): CI services set CI=true, and CI=false or CI=0 is how
// one says "not CI" explicitly.
package ci

import (
	"os"
	"strings"
	"testing"
)

// Enabled reports whether the tests run under CI.
func Enabled() bool {
	v := strings.TrimSpace(os.Getenv("CI"))
	return v != "" && v != "0" && !strings.EqualFold(v, "false")
}

// Required ends the test because missing, something it needs, is not
// there: it fails the test under CI and skips it elsewhere. missing says
// what and, best, how to get it ("openssl is not on PATH (apt-get install
// openssl)").
func Required(t testing.TB, missing string) {
	t.Helper()
	if Enabled() {
		t.Fatal(missing + ": required in CI")
	}
	t.Skip("SKIPPING: " + missing + "; this test did NOT run (under CI it fails)")
}
