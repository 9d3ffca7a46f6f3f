// Package benchauth holds what the benchmarks compare the authentication
// chain with: the check most Go services write by hand. It is compiled
// into no agent but the bench build of cmd/agent (-tags benchauthbypass,
// agentsvc/runtime/server/benchauth_on.go) and into package bench.
package benchauth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
)

// naiveClaims are the claims a hand-written check decodes.
type naiveClaims struct {
	jwt.RegisteredClaims
	Cnf binding.Cnf `json:"cnf"`
}

// Naive authenticates every request the way most Go services do by hand:
// the bearer token parsed and verified with golang-jwt's ParseWithClaims
// and a keyfunc (keyfunc/v3 behind binding.KeySet.Keyfunc) on every
// request, nothing cached; then, to check as much as the chain does, the
// token's cnf.x5t#S256 compared with the SHA-256 of the client
// certificate, computed for each request. It refuses with the chain's
// sentinel errors, so refuse can be the server's own answer.
func Naive(keys *binding.KeySet, issuer, audience string, next binding.AuthHandler, refuse binding.Refuse) http.Handler {
	parser := jwt.NewParser(jwt.WithValidMethods(binding.AllowedAlgorithms()), jwt.WithIssuer(issuer),
		jwt.WithAudience(audience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(binding.Leeway))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			refuse(w, r, binding.ErrNoToken)
			return
		}
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			refuse(w, r, binding.ErrNoClientCert)
			return
		}
		var claims naiveClaims
		if _, err := parser.ParseWithClaims(token, &claims, keys.Keyfunc(r.Context())); err != nil {
			refuse(w, r, errors.Join(binding.ErrInvalidToken, err))
			return
		}
		leaf := r.TLS.PeerCertificates[0]
		if !claims.Cnf.Bound(leaf) {
			refuse(w, r, binding.ErrThumbprintMismatch)
			return
		}
		caller, err := agentapi.Identity(leaf)
		if err != nil {
			refuse(w, r, binding.ErrNoIdentity)
			return
		}
		next(w, r, binding.Auth{Caller: caller, Certificate: leaf})
	})
}
