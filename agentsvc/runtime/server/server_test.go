package server_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/policy"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/server"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fixture struct {
	url     string
	client  *http.Client
	token   string
	release chan struct{}
	started chan struct{}
	srv     *http.Server
	done    chan error
	ca      *pki.CA
	idp     *tokens.IdP
	server  *server.Server
}

// start serves a validator whose extra methods are slow, panic, fail and
// echo; opts change the server's options.
func start(t *testing.T, opts ...func(*server.Options)) *fixture {
	t.Helper()
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	keys := idp.KeySet(t, binding.KeySetOptions{Logger: quiet})
	v, err := binding.NewVerifier(binding.Config{Issuer: tokens.Issuer, Audience: tokens.Audience, Keys: keys, BindingEnabled: true, BindingRequired: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{release: make(chan struct{}), started: make(chan struct{}, 10), done: make(chan error, 1), ca: ca, idp: idp}
	methods := []skill.Method{
		{Name: "validate_document", Handler: func(ctx context.Context, _ json.RawMessage) (any, error) {
			f.started <- struct{}{}
			select {
			case <-f.release:
				return map[string]bool{"done": true}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}},
		{Name: "get_validation_rules", Handler: func(context.Context, json.RawMessage) (any, error) { panic("boom: secret internals") }},
		{Name: "broken", Handler: func(context.Context, json.RawMessage) (any, error) {
			return nil, errors.New("db password=hunter2 rejected")
		}},
		{Name: "echo", Handler: func(_ context.Context, params json.RawMessage) (any, error) {
			if len(params) == 0 {
				params = json.RawMessage(`{}`)
			}
			return params, nil
		}},
	}
	pol, err := policy.Parse([]byte(`{"agents":{"validator":{"validate_document":["orchestrator"],"get_validation_rules":["*"],"list_skills":["*"],"get_health":["*"],"echo":["orchestrator","archivist"]}}}`),
		"validator", []string{"validate_document", "get_validation_rules", "list_skills", "get_health", "echo"})
	if err != nil {
		t.Fatal(err)
	}
	srvAgent := server.Agent{Name: "validator", Methods: methods, Checks: map[string]server.HealthCheck{"ok": func(context.Context) error { return nil }},
		DetailedChecks: map[string]server.DetailedCheck{
			"workers": func(context.Context) (any, error) { return map[string]any{"busy": 2, "total": 2, "note": "<&>"}, nil },
		}}
	o := server.Options{Agent: srvAgent, Policy: pol, Verifier: v, Logger: quiet, HandlerTimeout: 5 * time.Second,
		URL: "https://validator.ca-a2a.local:8003", TokenURL: "https://keycloak.ca-a2a.local:8443/realms/ca-a2a/protocol/openid-connect/token"}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.server = s
	leaf := ca.Issue(t, "validator")
	src, _ := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.srv = s.HTTPServer(ln.Addr().String(), certload.ServerConfig(src, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true}))
	go func() { f.done <- f.srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		select {
		case <-f.release:
		default:
			close(f.release)
		}
		_ = f.srv.Close()
		<-f.done
	})
	orch := ca.Issue(t, "orchestrator")
	csrc, _ := certload.FromPEM(orch.CertPEM, orch.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{})
	tr := &http.Transport{TLSClientConfig: certload.ClientConfig(csrc, agentapi.AuthorizeAgent(agentapi.Validator), certload.ClientOptions{})}
	t.Cleanup(tr.CloseIdleConnections)
	f.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	f.url = "https://" + ln.Addr().String()
	claims := tokens.Claims(orch.Cert)
	f.token = idp.Mint(t, idp.EC, claims, nil)
	return f
}

func (f *fixture) post(t *testing.T, body string) (int, string) {
	t.Helper()
	return f.postAs(t, f.client, f.token, body)
}

// caller returns a client and a bound token of another identity.
func (f *fixture) caller(t *testing.T, name string) (*http.Client, string) {
	t.Helper()
	leaf := f.ca.Issue(t, name)
	src, err := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, f.ca.PEM, certload.Origin{}, certload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: certload.ClientConfig(src, agentapi.AuthorizeAgent(agentapi.Validator), certload.ClientOptions{})}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, f.idp.Mint(t, f.idp.EC, tokens.Claims(leaf.Cert), nil)
}

func (f *fixture) postAs(t *testing.T, client *http.Client, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.url+"/message", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestJSONRPC(t *testing.T) {
	f := start(t)
	tests := []struct {
		name, body string
		status     int
		want       []string
		not        string
	}{
		{"panic is an internal error, no details", `{"jsonrpc":"2.0","method":"get_validation_rules","id":"a"}`, 200, []string{`"code":-32603`, `"message":"internal error"`, `"id":"a"`}, "boom"},
		{"unknown method before authorization", `{"jsonrpc":"2.0","method":"broken","id":1}`, 403, []string{`"code":-32011`}, "hunter2"},
		{"method not offered", `{"jsonrpc":"2.0","method":"archive_document","id":1}`, 200, []string{`"code":-32601`}, ""},
		{"id object refused", `{"jsonrpc":"2.0","method":"list_skills","id":{"x":1}}`, 200, []string{`"code":-32600`, `"id":null`}, ""},
		{"params must be an object for list_skills", `{"jsonrpc":"2.0","method":"list_skills","params":{"x":1},"id":1}`, 200, []string{`"code":-32602`}, ""},
		{"batch answers each element", `[{"jsonrpc":"2.0","method":"list_skills","id":1},{"jsonrpc":"2.0","method":"nope","id":2},{"jsonrpc":"2.0","method":"list_skills"},5]`, 200,
			[]string{`"id":1`, `"code":-32601`, `"code":-32600`}, ""},
		{"batch of notifications", `[{"jsonrpc":"2.0","method":"list_skills"}]`, 204, nil, ""},
		{"truncated batch", `[{"jsonrpc":"2.0"`, 200, []string{`"code":-32700`}, ""},
		{"trailing garbage", `{"jsonrpc":"2.0","method":"list_skills","id":1} x`, 200, []string{`"code":-32700`}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.post(t, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %s: %s", w, body)
				}
			}
			if tc.not != "" && strings.Contains(body, tc.not) {
				t.Errorf("body leaks %q: %s", tc.not, body)
			}
		})
	}
	// An oversized header block is refused (431 or a closed connection).
	req, _ := http.NewRequest(http.MethodGet, f.url+"/health", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 128<<10)) // net/http allows some slack above MaxHeaderBytes
	if resp, err := f.client.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("64 KiB+ headers: %d %s", resp.StatusCode, resp.Proto)
		}
	}
}

// TestHealthDetails: a detailed check's figures are in /health, as JSON
// without HTML escaping; a busy component is not a failing one.
func TestHealthDetails(t *testing.T) {
	f := start(t)
	resp, err := f.client.Get(f.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := `"workers":{"status":"ok","details":{"busy":2,"note":"<&>","total":2}}`
	if resp.StatusCode != 200 || !strings.Contains(string(body), want) || !strings.Contains(string(body), `"ok":{"status":"ok"}`) {
		t.Fatalf("%d %s\nwant %s", resp.StatusCode, body, want)
	}
	_, err = server.New(server.Options{Agent: server.Agent{Name: "validator",
		Checks:         map[string]server.HealthCheck{"x": func(context.Context) error { return nil }},
		DetailedChecks: map[string]server.DetailedCheck{"x": func(context.Context) (any, error) { return nil, nil }}},
		Policy: &policy.Policy{}, Verifier: &binding.Verifier{}})
	if err == nil || !strings.Contains(err.Error(), "health check x defined twice") {
		t.Fatalf("a check defined twice: %v", err)
	}
}

// TestHealthOutlivesItsFirstCaller: the report is shared for a while, so
// a caller that goes away mid-probe must not leave a failing one for the
// others.
func TestHealthOutlivesItsFirstCaller(t *testing.T) {
	probing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f := start(t, func(o *server.Options) {
		o.Agent.Checks = map[string]server.HealthCheck{"dep": func(ctx context.Context) error {
			once.Do(func() { close(probing) })
			<-release
			return ctx.Err() // what a check that is cut short answers
		}}
	})
	ctx, hangUp := context.WithCancel(t.Context())
	first := make(chan int, 1)
	go func() {
		code, _ := f.server.Health(ctx)
		first <- code
	}()
	<-probing
	hangUp() // the first caller goes away while the check runs
	close(release)
	if code := <-first; code != 200 {
		t.Errorf("the first caller got %d", code)
	}
	if code, report := f.server.Health(t.Context()); code != 200 || report.Checks["dep"].Status != "ok" {
		t.Fatalf("the next caller got %d %+v", code, report)
	}
}

// TestAnswersAreBounded: a batch whose answers would pass
// MaxBatchResponseBytes gets -32012 for the element that would pass it
// (with its id) and for the ones after it, which do not run; a single
// result no caller would read is -32012 too.
func TestAnswersAreBounded(t *testing.T) {
	var runs atomic.Int32
	f := start(t, func(o *server.Options) {
		for i, m := range o.Agent.Methods {
			if m.Name == "echo" { // echo answers {"x": "aaa..."} of params.n bytes
				o.Agent.Methods[i].Handler = func(_ context.Context, params json.RawMessage) (any, error) {
					runs.Add(1)
					var p struct{ N int }
					if err := json.Unmarshal(params, &p); err != nil {
						return nil, err
					}
					return json.RawMessage(`{"x":"` + strings.Repeat("a", p.N-8) + `"}`), nil
				}
			}
		}
	})
	elem := func(id string, n int) string {
		idPart := ""
		if id != "" {
			idPart = `,"id":` + id
		}
		return fmt.Sprintf(`{"jsonrpc":"2.0","method":"echo","params":{"n":%d}%s}`, n, idPart)
	}
	type answer struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	const mib = 1 << 20
	batch := "[" + strings.Join([]string{elem("1", mib), elem("2", mib), elem("", 10), elem("3", mib), elem(`"four"`, mib),
		elem("5", 10), elem("", 10), `{"jsonrpc":"2.0","id":6}`, `{"jsonrpc":"2.0","method":"list_skills","id":7}`}, ",") + "]"
	status, body := f.post(t, batch)
	var answers []answer
	if err := json.Unmarshal([]byte(body), &answers); status != 200 || err != nil {
		t.Fatalf("%d %v %.300s", status, err, body)
	}
	if len(body) > server.MaxBatchResponseBytes+1<<10 {
		t.Errorf("the batch answer takes %d bytes", len(body))
	}
	want := []struct {
		id   string
		code int
	}{{"1", 0}, {"2", 0}, {"3", 0}, {`"four"`, -32012}, {"5", -32012}, {"6", -32600}, {"7", -32012}}
	if len(answers) != len(want) {
		t.Fatalf("%d answers, want %d", len(answers), len(want))
	}
	for i, w := range want {
		a := answers[i]
		code := 0
		if a.Error != nil {
			code = a.Error.Code
		}
		if string(a.ID) != w.id || code != w.code || (code == 0) != (len(a.Result) == mib) {
			t.Errorf("answer %d: id %s code %d result of %d bytes; want id %s code %d", i, a.ID, code, len(a.Result), w.id, w.code)
		}
	}
	if n := runs.Load(); n != 5 { // 1, 2, the notification, 3, "four"; none after
		t.Errorf("%d elements ran, want 5", n)
	}

	// A single result larger than any caller reads.
	_, body = f.post(t, elem("8", agentapi.MaxResponseBytes))
	if !strings.Contains(body, `"code":-32012`) || !strings.Contains(body, `"id":8`) || len(body) > 1<<10 {
		t.Fatalf("single call: %.300s", body)
	}
	if _, body = f.post(t, elem("9", 2*mib)); !strings.Contains(body, `"result":{"x":"aaa`) {
		t.Fatalf("a single result over the hop limit but readable: %.100s", body)
	}
}

func TestGracefulShutdownDrainsRequestsInFlight(t *testing.T) {
	f := start(t)
	result := make(chan string, 1)
	go func() {
		_, body := f.post(t, `{"jsonrpc":"2.0","method":"validate_document","id":7}`)
		result <- body
	}()
	<-f.started
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		shutdown <- f.srv.Shutdown(ctx)
	}()
	// Shutdown closes the listener first, which ends Serve: once it has
	// returned, new connections are refused while the request in flight
	// finishes. (The cleanup reads done again.)
	served := <-f.done
	f.done <- served
	if !errors.Is(served, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v", served)
	}
	tr := &http.Transport{TLSClientConfig: f.client.Transport.(*http.Transport).TLSClientConfig}
	if _, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Get(f.url + "/health"); err == nil {
		t.Error("a new connection was served during shutdown")
	}
	close(f.release)
	if body := <-result; !strings.Contains(body, `"done":true`) {
		t.Fatalf("request in flight was not drained: %s", body)
	}
	if err := <-shutdown; err != nil {
		t.Fatal(err)
	}
}

// TestRefusedAnswers: every answer given before a JSON-RPC request is read
// (authentication refusals, unknown routes) comes from the server's one
// error mapping, with the same shape: the status, a JSON-RPC error with id
// null, Content-Type application/json, and for 401 the Bearer challenge.
func TestRefusedAnswers(t *testing.T) {
	f := start(t)
	tests := []struct {
		name, method, path, auth string
		status, code             int
		message, challenge       string
	}{
		{"no token", http.MethodPost, "/message", "", 401, -32010, "missing bearer token", `Bearer realm="ca-a2a"`},
		{"malformed token", http.MethodPost, "/message", "Bearer not.a.jwt", 401, -32010, "token is malformed",
			`Bearer realm="ca-a2a", error="invalid_token", error_description="token is malformed"`},
		{"unknown route", http.MethodGet, "/admin", "", 404, -32601, "not found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.url+tc.path, strings.NewReader(`{"jsonrpc":"2.0","method":"list_skills","id":1}`))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
				ID json.RawMessage `json:"id"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || body.Error.Code != tc.code || body.Error.Message != tc.message || string(body.ID) != "null" {
				t.Fatalf("%d %+v id %s; want %d %d %q", resp.StatusCode, body.Error, body.ID, tc.status, tc.code, tc.message)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
		})
	}
}

func TestOffered(t *testing.T) {
	a := server.Agent{Name: "validator", Methods: []skill.Method{{Name: "validate_document"}, {Name: "get_validation_rules"}}}
	if got := a.Offered(); !slices.Equal(got, []string{"list_skills", "get_health", "validate_document", "get_validation_rules", "GET /metrics"}) {
		t.Fatalf("offered %v", got)
	}
}

// TestPeerCheckOnOpenConnections: a certificate that may no longer be used
// (revoked, expired since the handshake) is refused on the connection it
// opened, on every route, with 401 and the connection closed.
func TestPeerCheckOnOpenConnections(t *testing.T) {
	var refuse atomic.Pointer[error]
	f := start(t, func(o *server.Options) {
		o.PeerCheck = func(chain []*x509.Certificate) error {
			if len(chain) == 0 || chain[0].Subject.CommonName != "orchestrator.ca-a2a.local" {
				return errors.New("PeerCheck called without the client's chain")
			}
			if e := refuse.Load(); e != nil {
				return *e
			}
			return nil
		}
	})
	ping := `{"jsonrpc":"2.0","method":"list_skills","id":1}`
	for _, tc := range []struct {
		err    error
		reason string
	}{
		{certload.ErrRevoked, "client certificate has been revoked"},
		{certload.ErrExpired, "client certificate has expired"},
		{certload.ErrUntrusted, "client certificate is no longer trusted"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			refuse.Store(nil)
			f.client.Transport.(*http.Transport).CloseIdleConnections()
			var conns []bool // Reused, per request
			send := func(method, path, body string) *http.Response {
				t.Helper()
				req, _ := http.NewRequest(method, f.url+path, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+f.token)
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
					GotConn: func(i httptrace.GotConnInfo) { conns = append(conns, i.Reused) },
				}))
				resp, err := f.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				resp.Body = io.NopCloser(strings.NewReader(string(b)))
				return resp
			}
			if r := send(http.MethodPost, "/message", ping); r.StatusCode != 200 {
				t.Fatalf("before: %d", r.StatusCode)
			}
			refuse.Store(&tc.err)
			r := send(http.MethodPost, "/message", ping)
			body, _ := io.ReadAll(r.Body)
			if r.StatusCode != 401 || !strings.Contains(string(body), `"code":-32010`) || !strings.Contains(string(body), tc.reason) ||
				!strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `Bearer realm="ca-a2a"`) {
				t.Fatalf("after: %d %s %v", r.StatusCode, body, r.Header)
			}
			if !r.Close || len(conns) != 2 || !conns[1] {
				t.Fatalf("refused on a reused connection (%v) and closed (%v), want both", conns, r.Close)
			}
			// Every route, not only the token-protected one.
			if r := send(http.MethodGet, "/health", ""); r.StatusCode != 401 || conns[2] {
				t.Fatalf("/health: %d, reused %v", r.StatusCode, conns[2])
			}
		})
	}
}
