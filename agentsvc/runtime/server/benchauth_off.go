//go:build !benchauthbypass

package server

import "net/http"

// benchAuth is how POST /message authenticates in a bench build instead of
// the verifier. A production build has no other way: this file compiles
// to nil, and the bench build's replacement (benchauth_on.go) exists only
// with -tags benchauthbypass, which nothing but package bench passes
// (cmd/agent's TestNoBenchAuthInProductionBuild checks the binary).
func (s *Server) benchAuth() (http.Handler, error) { return nil, nil }
