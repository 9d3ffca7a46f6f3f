// Package loopback finds free ports on 127.0.0.1 for the local runner and
// the tests, which only ever listen on loopback.
package loopback

import (
	"net"
	"testing"
)

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago. The
// caller binds it soon after; a race with another process is possible and
// callers that start servers retry or fail clearly.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Port is FreePort for tests: a failure ends the test.
func Port(t testing.TB) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
