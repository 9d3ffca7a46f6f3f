//go:build benchauthbypass

package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/ca-a2a/ca-a2a/internal/benchauth"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
)

// BenchAuthEnv chooses, in a bench build (-tags benchauthbypass) only, how
// POST /message authenticates, so that package bench can measure the
// token check on the same binary with and without it:
//
//	unset   the verifier, as in production
//	bypass  no token check at all: the client certificate is still
//	        required (by the TLS handshake and here) and names the caller
//	switch  the verifier, or bypass while the process last received
//	        SIGUSR1 rather than SIGUSR2: one process, one set of
//	        connections, measured both ways in turn
//	naive   golang-jwt ParseWithClaims with a keyfunc on every request,
//	        no cache (internal/benchauth.Naive)
const BenchAuthEnv = "CA_A2A_BENCH_AUTH"

func (s *Server) benchAuth() (http.Handler, error) {
	mode := os.Getenv(BenchAuthEnv)
	switch mode {
	case "":
		return nil, nil
	case "bypass":
		s.log.Warn("BENCH BUILD: POST /message skips the token check", slog.String(BenchAuthEnv, mode))
		return http.HandlerFunc(s.benchAuthBypass), nil
	case "switch":
		s.log.Warn("BENCH BUILD: POST /message skips the token check after SIGUSR1, checks it after SIGUSR2", slog.String(BenchAuthEnv, mode))
		guard := s.opts.Verifier.Guard(s.serveMessage, s.writeUnauthorized)
		var bypass atomic.Bool
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
		go func() {
			for sig := range sigs {
				bypass.Store(sig == syscall.SIGUSR1)
			}
		}()
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if bypass.Load() {
				s.benchAuthBypass(w, r)
				return
			}
			guard.ServeHTTP(w, r)
		}), nil
	case "naive":
		s.log.Warn("BENCH BUILD: POST /message checks tokens by hand, nothing cached", slog.String(BenchAuthEnv, mode))
		cfg := s.opts.Verifier.Config()
		return benchauth.Naive(cfg.Keys, cfg.Issuer, cfg.Audience, s.serveMessage, s.writeUnauthorized), nil
	}
	return nil, fmt.Errorf("server: %s=%q is not bypass, switch or naive", BenchAuthEnv, mode)
}

// benchAuthBypass serves POST /message with the caller named by the client
// certificate and no token check.
func (s *Server) benchAuthBypass(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		s.writeUnauthorized(w, r, binding.ErrNoClientCert)
		return
	}
	leaf := r.TLS.PeerCertificates[0]
	caller, err := agentapi.Identity(leaf)
	if err != nil {
		s.writeUnauthorized(w, r, binding.ErrNoIdentity)
		return
	}
	s.serveMessage(w, r, binding.Auth{Caller: caller, Certificate: leaf})
}
