// Package poll waits in tests for something another goroutine or process
// brings about (a file re-read, a key refreshed), checking it every few
// milliseconds.
package poll

import (
	"testing"
	"time"
)

// Bound is how long Until waits: a bound on a hang, not an expected speed.
const Bound = 60 * time.Second

// Until calls cond every 5 ms until it holds, and fails the test, naming
// what, if it still does not after Bound.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, Bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
