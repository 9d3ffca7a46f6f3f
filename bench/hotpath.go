package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
	"github.com/ca-a2a/ca-a2a/internal/benchauth"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/binding"
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
// token for the first time, the same middleware with the token cached,
// bare signature verification of the same algorithm (the floor), and the
// hand-written check of internal/benchauth on the cached path's request.
func HotPaths(tb testing.TB, f *Fixture) []HotPath {
	tb.Helper()
	var out []HotPath
	for _, key := range []*tokens.Key{f.IdP.EC, f.IdP.RSA} {
		fresh := f.uniqueTokens(tb, key, tokenPool)
		first := f.Verifier(tb, 1).Guard(okAuth, tokens.Refuse)
		v := f.Verifier(tb, 0)
		cached := v.Guard(okAuth, tokens.Refuse)
		naive := benchauth.Naive(v.Config().Keys, tokens.Issuer, tokens.Audience, okAuth, tokens.Refuse)
		// The requests of one connection, as the agent server sees them:
		// binding.ConnContext keeps the certificate's thumbprint and
		// identity from the first one.
		conn := binding.ConnContext(context.Background(), nil)
		reqs := make([]*http.Request, len(fresh))
		for i, tok := range fresh {
			reqs[i] = boundRequest(f.Client.Cert, tok).WithContext(conn)
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
			// The same request through what most services write by hand.
			HotPath{Name: "naive_" + key.Alg, Op: func() error { return serve(naive, w, one) }},
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

// okAuth is what the agent server's /message handler is to the middleware:
// it receives the caller's Auth (binding.Guard, the agent server's entry
// point).
func okAuth(w http.ResponseWriter, _ *http.Request, a binding.Auth) {
	if a.Caller == "" {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

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

// ServerPaths are an agent's whole handler (agentsvc/runtime/server:
// request id, auth chain with the token cached, JSON-RPC, get_health, the
// access log line) called in-process, with and without its metrics: what
// the metrics add to a request, without the transport around it.
func ServerPaths(tb testing.TB, f *Fixture) []HotPath {
	tb.Helper()
	var out []HotPath
	for _, withMetrics := range []bool{true, false} {
		h := f.agentServer(tb, "extractor", withMetrics).Handler()
		body := []byte(`{"jsonrpc":"2.0","method":"get_health","id":1}`)
		rd := bytes.NewReader(body)
		r := boundRequest(f.Client.Cert, f.Token).WithContext(binding.ConnContext(context.Background(), nil))
		r.Body = io.NopCloser(rd)
		r.ContentLength = int64(len(body))
		w := &statusWriter{h: http.Header{}}
		name := "server_without_metrics"
		if withMetrics {
			name = "server_with_metrics"
		}
		out = append(out, HotPath{Name: name, Op: func() error {
			rd.Reset(body)
			clear(w.h)
			return serve(h, w, r)
		}})
	}
	// What the metrics add to each call, alone.
	m := metrics.New(metrics.Options{Agent: "extractor", EMF: io.Discard})
	m.SetMethods([]string{"get_health"})
	i := m.Method("get_health")
	out = append(out, HotPath{Name: "observe_call", Op: func() error {
		m.ObserveCall(i, 0, 8*time.Microsecond)
		return nil
	}})
	return out
}
