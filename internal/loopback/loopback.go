// Package loopback finds free ports on 127.0.0.1 for the local runner and
// the tests, which only ever listen on loopback.
package loopback

import "net"

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
