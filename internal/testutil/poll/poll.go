// Package poll waits in tests for something another goroutine or process
// brings about (a file re-read, a key refreshed, a certificate rotated),
// checking it again and again.
package poll

import (
	"testing"
	"time"
)

// Bound is how long Until and Every wait: a bound on a hang, not an
// expected speed.
const Bound = 60 * time.Second

// Until calls cond every 5 ms until it holds, and fails the test, naming
// what, if it still does not after Bound.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Every(t, 5*time.Millisecond, what, cond)
}

// Every is Until with cond called every interval, for a cond that costs
// more than a look (a handshake, a request).
func Every(t testing.TB, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, Bound)
		}
		time.Sleep(interval)
	}
}
