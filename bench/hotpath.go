package bench

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
)

// HotPath is one operation of the verifier's hot path, ready to be run in a
// loop: Op returns an error when it did not do what it measures (a request
// refused, a signature that does not verify).
type HotPath struct {
	Name string
	Op   func() error
}

// tokenPool is how many distinct tokens the first-sight paths cycle
// through; with a cache of one entry, every request is a cache miss that
// also evicts, which is the steady state of a full cache.
const tokenPool = 64

// HotPaths builds, for ES256 and RS256, the binding middleware seeing a
// token for the first time, the same middleware with the token cached, and
// bare signature verification of the same algorithm (the floor).
func HotPaths(tb testing.TB, f *Fixture) []HotPath {
	tb.Helper()
	var out []HotPath
	for _, key := range []*tokens.Key{f.IdP.EC, f.IdP.RSA} {
		fresh := f.uniqueTokens(tb, key, tokenPool)
		first := f.Verifier(tb, 1).Middleware(okHandler, tokens.Refuse)
		cached := f.Verifier(tb, 0).Middleware(okHandler, tokens.Refuse)
		reqs := make([]*http.Request, len(fresh))
		for i, tok := range fresh {
			reqs[i] = boundRequest(f.Client.Cert, tok)
		}
		one := reqs[0]
		w := &statusWriter{h: http.Header{}}
		n := 0
		out = append(out,
			HotPath{Name: "middleware_first_sight_" + key.Alg, Op: func() error {
				n++
				return serve(first, w, reqs[n%len(reqs)])
			}},
			HotPath{Name: "middleware_cached_" + key.Alg, Op: func() error { return serve(cached, w, one) }},
		)
		input, sig, err := parseUnverified(fresh[0])
		if err != nil {
			tb.Fatal(err)
		}
		method, pub := jwt.GetSigningMethod(key.Alg), key.Signer.Public()
		out = append(out, HotPath{Name: "signature_only_" + key.Alg, Op: func() error {
			return method.Verify(input, sig, pub)
		}})
	}
	return out
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })

// boundRequest is a POST /message as the server sees it after the
// handshake: the client's certificate on the connection and the token.
func boundRequest(leaf *x509.Certificate, token string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "https://127.0.0.1/message", http.NoBody)
	r.Header.Set("Authorization", "Bearer "+token)
	r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf}}
	return r
}

// statusWriter is the smallest ResponseWriter: the measurement is the
// middleware, not a recorder.
type statusWriter struct {
	h      http.Header
	status int
}

func (w *statusWriter) Header() http.Header         { return w.h }
func (w *statusWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *statusWriter) WriteHeader(code int)        { w.status = code }

// serve runs h on r with a writer reused across calls (no allocation of
// its own): the paths are run one call at a time.
func serve(h http.Handler, w *statusWriter, r *http.Request) error {
	w.status = http.StatusOK
	h.ServeHTTP(w, r)
	if w.status != http.StatusOK {
		return fmt.Errorf("middleware answered %d", w.status)
	}
	return nil
}

// RunHotPath runs h as a benchmark body.
func RunHotPath(b *testing.B, h HotPath) {
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Op(); err != nil {
			b.Fatal(err)
		}
	}
}
