package agentclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/agentclient"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fixture struct {
	ca     *pki.CA
	idp    *tokens.IdP
	caller certload.Source
	tokens *tokensource.Source
}

func newFixture(t *testing.T) *fixture {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	leaf := ca.Issue(t, "orchestrator")
	src, err := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tokensource.New(tokensource.Config{TokenURL: idp.TokenURL, ClientID: "orchestrator", Certificate: src, ServerName: "keycloak.ca-a2a.local", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ca: ca, idp: idp, caller: src, tokens: ts}
}

// serve starts an agent named name whose /message runs the real binding
// middleware, then h.
func (f *fixture) serve(t *testing.T, name string, h http.HandlerFunc) string {
	t.Helper()
	leaf := f.ca.Issue(t, name)
	src, _ := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, f.ca.PEM, certload.Origin{}, certload.Options{})
	v, err := binding.NewVerifier(binding.Config{Issuer: tokens.Issuer, Audience: tokens.Audience,
		Keys: f.idp.KeySet(t, binding.KeySetOptions{}), BindingEnabled: true, BindingRequired: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: v.Middleware(h, tokens.Refuse), TLSConfig: certload.ServerConfig(src, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true}),
		ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	// Shutdown, unlike Close, waits for handlers, so goleak sees none.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return "https://" + ln.Addr().String()
}

func (f *fixture) client(t *testing.T, peers map[string]string, handshakes *atomic.Int64) *agentclient.Client {
	t.Helper()
	c, err := agentclient.New(agentclient.Config{Certificate: f.caller, Tokens: f.tokens, Peers: peers, HandshakeCounter: handshakes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// echo answers every request with its params as result, or with the error
// named by the "fail" param.
func echo(w http.ResponseWriter, r *http.Request) {
	var req jsonrpc.Request
	_ = json.NewDecoder(r.Body).Decode(&req)
	a, _ := binding.FromContext(r.Context())
	resp := jsonrpc.Response{JSONRPC: "2.0", ID: req.ID}
	var p struct {
		Fail int `json:"fail"`
	}
	_ = json.Unmarshal(req.Params, &p)
	if p.Fail != 0 {
		resp.Error = &jsonrpc.Error{Code: p.Fail, Message: "failed on purpose"}
	} else {
		resp.Result, _ = json.Marshal(map[string]string{"method": req.Method, "caller": a.Caller})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func TestCall(t *testing.T) {
	f := newFixture(t)
	url := f.serve(t, "extractor", echo)
	var handshakes atomic.Int64
	c := f.client(t, map[string]string{"extractor": url}, &handshakes)

	for range 10 {
		var got map[string]string
		if err := c.Call(t.Context(), "extractor", "list_skills", nil, &got); err != nil {
			t.Fatal(err)
		}
		if got["method"] != "list_skills" || got["caller"] != "orchestrator" {
			t.Fatalf("result %v", got)
		}
	}
	if n := handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes for 10 calls over keep-alive, want 1", n)
	}
	if n := f.idp.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests for 10 calls, want 1", n)
	}

	err := c.Call(t.Context(), "extractor", "x", map[string]int{"fail": agentapi.CodeNotFound}, nil)
	var ce *agentclient.CallError
	if !errors.As(err, &ce) || jsonrpc.CodeOf(err) != agentapi.CodeNotFound || ce.RPC.Message != "failed on purpose" {
		t.Fatalf("err = %v", err)
	}
}

// TestRedirectNotFollowed: a peer answering 307 gets the request back as a
// failed call; the client never sends it, with its token, where the
// redirect points.
func TestRedirectNotFollowed(t *testing.T) {
	f := newFixture(t)
	var followed atomic.Int64
	url := f.serve(t, "validator", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
			echo(w, r)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	c := f.client(t, map[string]string{"validator": url}, nil)
	if err := c.Call(t.Context(), "validator", "list_skills", nil, nil); err == nil {
		t.Fatal("a redirect answered as a successful call")
	}
	if n := followed.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}

func TestPeerIdentityMismatch(t *testing.T) {
	f := newFixture(t)
	url := f.serve(t, "extractor", echo)
	// The URL points at the extractor, but the caller asked for the archivist.
	c := f.client(t, map[string]string{"archivist": url}, nil)
	err := c.Call(t.Context(), "archivist", "list_skills", nil, nil)
	if jsonrpc.CodeOf(err) != agentapi.CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
	if f.idp.TokenRequests() > 1 {
		t.Fatal("token requested more than once")
	}
}

func TestRetryOnceOn401(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	url := f.serve(t, "validator", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			tokens.Refuse(w, r, binding.ErrInvalidToken)
			return
		}
		echo(w, r)
	})
	c := f.client(t, map[string]string{"validator": url}, nil)
	if err := c.Call(t.Context(), "validator", "list_skills", nil, nil); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || f.idp.TokenRequests() != 2 {
		t.Fatalf("calls %d, token requests %d; want 2 and 2", calls.Load(), f.idp.TokenRequests())
	}

	// Always 401: one retry, then -32010.
	always := f.serve(t, "archivist", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		tokens.Refuse(w, r, binding.ErrInvalidToken)
	})
	calls.Store(0)
	c = f.client(t, map[string]string{"archivist": always}, nil)
	if err := c.Call(t.Context(), "archivist", "list_skills", nil, nil); jsonrpc.CodeOf(err) != agentapi.CodeUnauthenticated {
		t.Fatalf("err = %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d attempts, want 2", calls.Load())
	}
}

func TestStatusMapping(t *testing.T) {
	f := newFixture(t)
	for status, code := range map[int]int{403: agentapi.CodeForbidden, 413: agentapi.CodeTooLarge, 503: agentapi.CodeUnavailable} {
		url := f.serve(t, "validator", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(jsonrpc.Response{JSONRPC: jsonrpc.Version, Error: &jsonrpc.Error{Code: code, Message: "no"}, ID: json.RawMessage("null")})
		})
		c := f.client(t, map[string]string{"validator": url}, nil)
		if err := c.Call(t.Context(), "validator", "m", nil, nil); jsonrpc.CodeOf(err) != code {
			t.Errorf("HTTP %d: err = %v, want code %d", status, err, code)
		}
	}
}

func TestDeadline(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	url := f.serve(t, "validator", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's cleanup
	c := f.client(t, map[string]string{"validator": url}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Call(ctx, "validator", "slow", nil, nil)
	if jsonrpc.CodeOf(err) != agentapi.CodeUnavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("call outlived its deadline: %s", time.Since(start))
	}
}

func TestNoRetryOfSentRequests(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	url := f.serve(t, "archivist", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		// Kill the connection after the request arrived: the request was sent.
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
	})
	c := f.client(t, map[string]string{"archivist": url}, nil)
	if err := c.Call(t.Context(), "archivist", "archive_document", map[string]string{}, nil); err == nil {
		t.Fatal("no error")
	}
	if calls.Load() != 1 {
		t.Fatalf("a sent, non-idempotent request was retried (%d attempts)", calls.Load())
	}
	// Unknown agent and refused connection.
	if err := c.Call(t.Context(), "nobody", "m", nil, nil); err == nil {
		t.Fatal("unknown agent accepted")
	}
	down := f.client(t, map[string]string{"validator": "https://127.0.0.1:1"}, nil)
	if err := down.Call(t.Context(), "validator", "m", nil, nil); jsonrpc.CodeOf(err) != agentapi.CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
}

// hangingTokens never answers until released.
type hangingTokens struct{ release chan struct{} }

func (h hangingTokens) Token() (*oauth2.Token, error) {
	<-h.release
	return nil, errors.New("released")
}
func (h hangingTokens) Invalidate() {}

func TestTokenFetchBoundedByDeadline(t *testing.T) {
	f := newFixture(t)
	url := f.serve(t, "validator", echo)
	h := hangingTokens{release: make(chan struct{})}
	defer close(h.release)
	c, err := agentclient.New(agentclient.Config{Certificate: f.caller, Tokens: h, Peers: map[string]string{"validator": url}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Call(ctx, "validator", "m", nil, nil); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
}

// TestRotationWithSessionResumption: after the caller's certificate
// rotates, neither a resumed TLS session nor a kept-alive connection may
// present the old certificate, to which the fresh token is not bound.
func TestRotationWithSessionResumption(t *testing.T) {
	f := newFixture(t)
	url := f.serve(t, "validator", echo)
	first := f.ca.Issue(t, "orchestrator")
	dir := t.TempDir()
	certPath, keyPath, caPath := pki.WriteFiles(t, dir, first, f.ca.PEM)
	files, err := certload.WatchFiles(certPath, keyPath, caPath, certload.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	ts, err := tokensource.New(tokensource.Config{TokenURL: f.idp.TokenURL, ClientID: "orchestrator", Certificate: files, ServerName: "keycloak.ca-a2a.local", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var handshakes atomic.Int64
	c, err := agentclient.New(agentclient.Config{Certificate: files, Tokens: ts, Peers: map[string]string{"validator": url}, HandshakeCounter: &handshakes})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func() error {
		var got map[string]string
		return c.Call(t.Context(), "validator", "list_skills", nil, &got)
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	// Force the next connection to resume the session of the old certificate
	// if the cache allowed it.
	c.Close()
	pki.WriteFiles(t, dir, f.ca.Issue(t, "orchestrator"), f.ca.PEM)
	if changed, err := files.Reload(); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	for i := range 3 {
		if err := call(); err != nil {
			t.Fatalf("call %d after rotation: %v", i, err)
		}
		c.Close()
	}
}

type call struct {
	agent, method string
	code          int
}

type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) CallDone(agent, method string, code int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{agent, method, code})
}

// TestObserverSeesEveryCall: the observer learns each call's outcome once,
// after the retries: success, an error the peer sent, a peer that is down,
// an agent the client does not know.
func TestObserverSeesEveryCall(t *testing.T) {
	f := newFixture(t)
	url := f.serve(t, "extractor", echo)
	dead := "https://127.0.0.1:1"
	var rec recorder
	c, err := agentclient.New(agentclient.Config{Certificate: f.caller, Tokens: f.tokens, Observer: &rec,
		Peers: map[string]string{"extractor": url, "validator": dead}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	_ = c.Call(t.Context(), "extractor", "list_skills", nil, nil)
	_ = c.Call(t.Context(), "extractor", "x", map[string]int{"fail": agentapi.CodeNotFound}, nil)
	_ = c.Call(t.Context(), "validator", "validate_document", nil, nil)
	_ = c.Call(t.Context(), "mallory", "y", nil, nil)
	want := []call{
		{"extractor", "list_skills", 0},
		{"extractor", "x", agentapi.CodeNotFound},
		{"validator", "validate_document", agentapi.CodeUnavailable},
		{"mallory", "y", jsonrpc.CodeInternalError},
	}
	if !slices.Equal(rec.calls, want) {
		t.Fatalf("observed %v, want %v", rec.calls, want)
	}
}

// swapSource is a certificate Source the test switches.
type swapSource struct {
	b atomic.Pointer[certload.Bundle]
}

func (s *swapSource) Bundle() *certload.Bundle { return s.b.Load() }

// fixedToken is a token source with one token.
type fixedToken struct{ tok string }

func (f fixedToken) Token() (*oauth2.Token, error) { return &oauth2.Token{AccessToken: f.tok}, nil }
func (fixedToken) Invalidate()                     {}

// TestNoSessionAcrossTrustChanges: a resumed TLS session carries the
// server certificate of the handshake that made it. After the caller's CA
// bundle changed (the old CA retired), such a session must not be resumed,
// or the call fails against a server that long since presents a
// certificate of the remaining CA.
func TestNoSessionAcrossTrustChanges(t *testing.T) {
	f := newFixture(t)
	next := pki.NewCA(t, "CA") // the same name, another key: a rotation
	both := append(append([]byte(nil), f.ca.PEM...), next.PEM...)
	bundle := func(l *pki.Leaf, caPEM []byte) *certload.Bundle {
		t.Helper()
		s, err := certload.FromPEM(l.CertPEM, l.KeyPEM, caPEM, certload.Origin{}, certload.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Bundle()
	}
	server := &swapSource{}
	server.b.Store(bundle(f.ca.Issue(t, "validator"), both))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v, err := binding.NewVerifier(binding.Config{Issuer: tokens.Issuer, Audience: tokens.Audience,
		Keys: f.idp.KeySet(t, binding.KeySetOptions{}), BindingEnabled: true, BindingRequired: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: v.Middleware(http.HandlerFunc(echo), tokens.Refuse),
		TLSConfig:         certload.ServerConfig(server, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true}),
		ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close(); <-done })

	callerLeaf := next.Issue(t, "orchestrator")
	caller := &swapSource{}
	caller.b.Store(bundle(callerLeaf, both))
	var handshakes atomic.Int64
	c, err := agentclient.New(agentclient.Config{Certificate: caller, Peers: map[string]string{"validator": "https://" + ln.Addr().String()},
		Tokens: fixedToken{f.idp.Mint(t, f.idp.EC, tokens.Claims(callerLeaf.Cert), nil)}, HandshakeCounter: &handshakes})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func() error {
		var got map[string]string
		return c.Call(t.Context(), "validator", "list_skills", nil, &got)
	}
	for range 2 { // a session, then a resumed one
		if err := call(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if handshakes.Load() != 2 {
		t.Fatalf("%d handshakes", handshakes.Load())
	}
	// The server moves to the next CA, then the caller drops the old one.
	server.b.Store(bundle(next.Issue(t, "validator"), both))
	caller.b.Store(bundle(callerLeaf, next.PEM))
	for i := range 3 {
		if err := call(); err != nil {
			t.Fatalf("call %d after the old CA was retired: %v", i, err)
		}
		c.Close()
	}
}
