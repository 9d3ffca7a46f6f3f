package binding

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"strings"
)

// Auth is what the middleware learned about an authenticated request.
type Auth struct {
	// Caller is the agent name in the SAN of the presented certificate
	// ("lambda", "orchestrator", ...). Authorization uses it and nothing else.
	Caller string
	// Claims are the verified token claims.
	Claims *Claims
	// Certificate is the presented leaf.
	Certificate *x509.Certificate
}

type authKey struct{}

// WithAuth returns ctx carrying a.
func WithAuth(ctx context.Context, a Auth) context.Context {
	return context.WithValue(ctx, authKey{}, a)
}

// FromContext returns the Auth the middleware stored, if any.
func FromContext(ctx context.Context) (Auth, bool) {
	a, ok := ctx.Value(authKey{}).(Auth)
	return a, ok
}

// BearerToken returns the token of the request's single Authorization
// header with scheme Bearer (case-insensitive). Tokens in the query string
// or body are never read.
func BearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return "", ErrNoToken
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token = strings.TrimSpace(token)
	// Two IndexByte scans (vectorised) cost less than one ContainsAny over
	// a 900-byte token.
	if token == "" || strings.IndexByte(token, ' ') >= 0 || strings.IndexByte(token, '\t') >= 0 {
		return "", ErrNoToken
	}
	return token, nil
}

// Authenticate runs the whole chain on r and returns who is calling.
func (v *Verifier) Authenticate(r *http.Request) (Auth, error) {
	var leaf *x509.Certificate
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		leaf = r.TLS.PeerCertificates[0]
	}
	token, err := BearerToken(r)
	if err != nil {
		return Auth{}, err
	}
	// The thumbprint and identity of the request's certificate, computed
	// once per connection when the server installed ConnContext.
	var facts *peerFacts
	if leaf != nil {
		facts = peer(r.Context(), leaf)
	}
	claims, err := v.verify(r.Context(), token, leaf, facts)
	if err != nil {
		return Auth{}, err
	}
	a := Auth{Claims: claims, Certificate: leaf}
	if leaf != nil {
		if facts.idErr != nil {
			return Auth{}, ErrNoIdentity
		}
		a.Caller = facts.caller
	}
	return a, nil
}

// Refuse answers a request that the authentication chain refused, err
// saying why (it wraps one of the package's sentinel errors; Code gives its
// reason code, Reason the safe message). The middleware writes no response itself: the
// agent server's one error mapping supplies Refuse.
type Refuse func(w http.ResponseWriter, r *http.Request, err error)

// AuthHandler serves an authenticated request; a says who is calling.
type AuthHandler func(w http.ResponseWriter, r *http.Request, a Auth)

// Guard authenticates every request before next sees it, and hands next
// the Auth as an argument: unlike Middleware it does not copy the request
// to give it a new context, so an accepted request with a cached token
// costs no allocation. A request that fails is logged without its token
// and handed to refuse; next never sees it. refuse is required.
func (v *Verifier) Guard(next AuthHandler, refuse Refuse) http.Handler {
	if refuse == nil {
		panic("binding: Guard needs a Refuse to answer refused requests")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := v.Authenticate(r)
		if err != nil {
			v.log.LogAttrs(r.Context(), slog.LevelWarn, "authentication failed",
				slog.String("remote", r.RemoteAddr), slog.String("reason", Code(err)), slog.String("message", Reason(err)),
				slog.String("client_cert", subjectOf(r)))
			refuse(w, r, err)
			return
		}
		next(w, r, a)
	})
}

// Middleware is Guard for an http.Handler: next finds the Auth in the
// request's context (FromContext).
func (v *Verifier) Middleware(next http.Handler, refuse Refuse) http.Handler {
	return v.Guard(func(w http.ResponseWriter, r *http.Request, a Auth) {
		next.ServeHTTP(w, r.WithContext(WithAuth(r.Context(), a)))
	}, refuse)
}

func subjectOf(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return r.TLS.PeerCertificates[0].Subject.String()
}
