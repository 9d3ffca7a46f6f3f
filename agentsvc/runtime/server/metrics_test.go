package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/policy"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/server"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/internal/testutil/emftest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// observed is a validator with metrics, served over the real mTLS config,
// and clients for several identities.
type observed struct {
	url     string
	ca      *pki.CA
	idp     *tokens.IdP
	m       *metrics.Agent
	src     certload.Source
	logs    *syncbuf.Buffer
	emf     *syncbuf.Buffer
	clients map[string]*http.Client // by identity; "nobody" has a CA certificate without an agent name
	leaves  map[string]*pki.Leaf
}

func startObserved(t *testing.T) *observed {
	t.Helper()
	o := &observed{ca: pki.NewCA(t, "CA A2A Root CA"), logs: &syncbuf.Buffer{}, emf: &syncbuf.Buffer{},
		clients: map[string]*http.Client{}, leaves: map[string]*pki.Leaf{}}
	o.idp = tokens.New(t, o.ca)
	log := slog.New(slog.NewJSONHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	leaf := o.ca.Issue(t, "validator")
	var err error
	o.src, err = certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, o.ca.PEM, certload.Origin{}, certload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o.m = metrics.New(metrics.Options{Agent: "validator", Certificate: o.src, EMF: o.emf, Logger: log})
	keys := o.idp.KeySet(t, binding.KeySetOptions{Logger: quiet, OnRefresh: o.m.JWKSRefreshed})
	v, err := binding.NewVerifier(binding.Config{Issuer: tokens.Issuer, Audience: tokens.Audience, Keys: keys,
		BindingEnabled: true, BindingRequired: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	methods := []skill.Method{
		{Name: "validate_document", Handler: func(context.Context, json.RawMessage) (any, error) { return map[string]bool{"ok": true}, nil }},
		{Name: "get_validation_rules", Handler: func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("db down") }},
	}
	offered := []string{"validate_document", "get_validation_rules", "list_skills", "get_health", agentapi.RouteMetrics}
	pol, err := policy.Parse([]byte(`{"agents":{"validator":{"validate_document":["orchestrator"],"get_validation_rules":["*"],`+
		`"list_skills":["*"],"get_health":["*"],"GET /metrics":["orchestrator"]}}}`), "validator", offered)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Options{Agent: server.Agent{Name: "validator", Methods: methods}, Policy: pol, Verifier: v,
		Logger: log, Metrics: o.m, Certificate: o.src})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer(ln.Addr().String(), certload.ServerConfig(o.src, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true}))
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = hs.Close(); <-done })
	o.url = "https://" + ln.Addr().String()
	for _, name := range []string{"orchestrator", "lambda", "extractor", "nobody"} {
		var opts []pki.LeafOption
		if name == "nobody" {
			opts = append(opts, pki.DNS("nobody.example.com"))
		}
		l := o.ca.Issue(t, name, opts...)
		o.leaves[name] = l
		o.clients[name] = o.client(t, []tls.Certificate{l.TLS()})
	}
	return o
}

// client verifies the server as the validator and presents certs.
func (o *observed) client(t *testing.T, certs []tls.Certificate) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(o.ca.Cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: agentapi.DNSName("validator"), Certificates: certs,
		MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// refusals scrapes /metrics as the orchestrator and returns the refusal
// counters by reason.
func (o *observed) counts(t *testing.T, name, label string) map[string]float64 {
	t.Helper()
	resp, err := o.clients["orchestrator"].Get(o.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %d %s", resp.StatusCode, body)
	}
	c, err := metrics.Counts(resp.Body, name, label)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// accessLine returns the access log line of the request with id.
func (o *observed) accessLine(t *testing.T, id string) map[string]any {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(o.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil && l["msg"] == "request" && l["request_id"] == id {
			return l
		}
	}
	t.Fatalf("no access line for request %s in\n%s", id, o.logs.String())
	return nil
}

// TestEveryRefusalCountedOnce provokes each reason code over mTLS and
// checks that it is answered with data.reason, logged in the access line
// and counted exactly once (twice for a batch with two forbidden elements),
// no other reason moving.
func TestEveryRefusalCountedOnce(t *testing.T) {
	o := startObserved(t)
	orch := o.leaves["orchestrator"].Cert
	bound := tokens.Claims(orch)
	now := time.Now()
	mint := func(claims jwt.MapClaims, header map[string]any) string {
		return o.idp.Mint(t, o.idp.EC, claims, header)
	}
	with := func(k string, v any) jwt.MapClaims {
		c := maps.Clone(bound)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, bound)
	hs.Header["kid"] = o.idp.EC.KID
	hsToken, _ := hs.SignedString([]byte("a shared secret"))
	rogue := tokens.New(t, o.ca)
	forged := rogue.Mint(t, &tokens.Key{KID: o.idp.EC.KID, Alg: "ES256", Signer: rogue.EC.Signer}, bound, nil)
	good := mint(bound, nil)
	call := `{"jsonrpc":"2.0","method":"get_health","id":1}`
	huge := `{"jsonrpc":"2.0","method":"get_health","params":{"x":"` + strings.Repeat("a", 1<<20) + `"},"id":1}`
	forbidden := `{"jsonrpc":"2.0","method":"validate_document","id":1}`
	lambdaToken := mint(tokens.Claims(o.leaves["lambda"].Cert), nil)

	tests := []struct {
		name    string
		as      string // client identity
		method  string // HTTP method; POST /message by default
		path    string
		token   string
		body    string
		chunked bool // no Content-Length: the body limit is met while reading
		status  int
		reason  string
		count   float64
		logged  bool // the access line carries the reason
	}{
		{name: "missing_token", as: "orchestrator", body: call, status: 401, reason: "missing_token"},
		{name: "malformed_token", as: "orchestrator", token: "not.a.jwt", body: call, status: 401, reason: "malformed_token"},
		{name: "header_refused: jku", as: "orchestrator", token: mint(bound, map[string]any{"jku": "https://evil.example/jwks"}), body: call, status: 401, reason: "header_refused"},
		{name: "header_refused: no kid", as: "orchestrator", token: mint(bound, map[string]any{"kid": nil}), body: call, status: 401, reason: "header_refused"},
		{name: "alg_not_allowed", as: "orchestrator", token: hsToken, body: call, status: 401, reason: "alg_not_allowed"},
		{name: "unknown_kid", as: "orchestrator", token: o.idp.Mint(t, &tokens.Key{KID: "nope", Alg: "ES256", Signer: o.idp.EC.Signer}, bound, nil), body: call, status: 401, reason: "unknown_kid"},
		{name: "bad_signature", as: "orchestrator", token: forged, body: call, status: 401, reason: "bad_signature"},
		{name: "expired", as: "orchestrator", token: mint(with("exp", now.Add(-time.Minute).Unix()), nil), body: call, status: 401, reason: "expired"},
		{name: "not_yet_valid", as: "orchestrator", token: mint(with("nbf", now.Add(5*time.Minute).Unix()), nil), body: call, status: 401, reason: "not_yet_valid"},
		{name: "bad_issuer", as: "orchestrator", token: mint(with("iss", "https://evil.example/realms/ca-a2a"), nil), body: call, status: 401, reason: "bad_issuer"},
		{name: "bad_audience", as: "orchestrator", token: mint(with("aud", "account"), nil), body: call, status: 401, reason: "bad_audience"},
		{name: "unbound_token", as: "orchestrator", token: mint(with("cnf", nil), nil), body: call, status: 401, reason: "unbound_token"},
		{name: "binding_mismatch", as: "extractor", token: good, body: call, status: 401, reason: "binding_mismatch"},
		{name: "body_too_large: Content-Length", as: "orchestrator", token: good, body: huge, status: 413, reason: "body_too_large"},
		{name: "body_too_large: read", as: "orchestrator", token: good, body: huge, chunked: true, status: 413, reason: "body_too_large"},
		{name: "method_forbidden", as: "lambda", token: lambdaToken, body: forbidden, status: 403, reason: "method_forbidden"},
		{name: "method_forbidden: two batch elements", as: "lambda", token: lambdaToken, body: "[" + forbidden + "," + call + "," + forbidden + "]",
			status: 200, reason: "method_forbidden", count: 2},
		{name: "method_forbidden: a skill by message/send", as: "lambda", token: lambdaToken, body: sendMsg("1", `{"skill":"validate_document"}`),
			status: 403, reason: "method_forbidden"},
		{name: "method_forbidden: certificate without identity", as: "nobody", token: mint(tokens.Claims(o.leaves["nobody"].Cert), nil),
			body: call, status: 401, reason: "method_forbidden"},
		{name: "method_forbidden: scrape", as: "lambda", method: http.MethodGet, path: "/metrics", status: 403, reason: "method_forbidden"},
	}
	covered := map[string]bool{}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := o.counts(t, "ca_a2a_auth_refusals_total", "reason")
			method, path := cmpOr(tc.method, http.MethodPost), cmpOr(tc.path, "/message")
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, _ := http.NewRequest(method, o.url+path, body)
			id := fmt.Sprintf("case-%d", i)
			req.Header.Set("X-Request-Id", id)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := o.clients[tc.as].Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, raw)
			}
			type rpcErr struct {
				Error *struct {
					Data struct {
						Reason string `json:"reason"`
					} `json:"data"`
				} `json:"error"`
			}
			var answers []rpcErr
			if bytes.HasPrefix(raw, []byte("[")) {
				_ = json.Unmarshal(raw, &answers)
			} else {
				var one rpcErr
				_ = json.Unmarshal(raw, &one)
				answers = append(answers, one)
			}
			var reasons []string
			for _, a := range answers {
				if a.Error != nil && a.Error.Data.Reason != "" {
					reasons = append(reasons, a.Error.Data.Reason)
				}
			}
			want := max(tc.count, 1)
			if len(reasons) != int(want) || slices.ContainsFunc(reasons, func(r string) bool { return r != tc.reason }) {
				t.Fatalf("data.reason %v, want %v × %s: %s", reasons, want, tc.reason, raw)
			}
			after := o.counts(t, "ca_a2a_auth_refusals_total", "reason")
			for r := range after {
				d := after[r] - before[r]
				switch {
				case r == tc.reason && d != want:
					t.Errorf("%s counted %v times, want %v", r, d, want)
				case r != tc.reason && d != 0:
					t.Errorf("%s moved by %v", r, d)
				}
			}
			if l := o.accessLine(t, id); tc.count == 0 && l["reason"] != tc.reason {
				t.Errorf("access line reason %v, want %s: %v", l["reason"], tc.reason, l)
			} else if tc.count > 0 && l["reason"] != nil {
				t.Errorf("a batch's access line names one reason: %v", l)
			}
			covered[tc.reason] = true
		})
	}
	// Every code of the contract is provoked here, but the three of the
	// per-request certificate check, which need a CRL, a retired CA or a
	// certificate expiring on an open connection (agentsvc/rotation_test.go).
	for _, r := range agentapi.Reasons() {
		if !covered[r] && r != agentapi.ReasonCertificateRevoked && r != agentapi.ReasonCertificateExpired &&
			r != agentapi.ReasonCertificateUntrusted {
			t.Errorf("reason %s is provoked by no case", r)
		}
	}
	// The unknown kid fetched the JWKS once more, and that was counted.
	if got := o.counts(t, "ca_a2a_jwks_refreshes_total", "result"); got["ok"] != 2 || got["failed"] != 0 {
		t.Errorf("JWKS refreshes %v, want 2 ok (start-up, unknown kid)", got)
	}
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// TestMetricsNeedsAClientCertificate: without a client certificate the TLS
// handshake fails before /metrics is reached; with one, no token is needed.
func TestMetricsNeedsAClientCertificate(t *testing.T) {
	o := startObserved(t)
	for _, path := range []string{"/metrics", "/message"} {
		_, err := o.client(t, nil).Get(o.url + path)
		if err == nil {
			t.Fatalf("GET %s without a client certificate got an answer", path)
		}
	}
	resp, err := o.clients["orchestrator"].Get(o.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(body), "ca_a2a_auth_refusals_total") {
		t.Fatalf("scrape: %d %s %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// The card names the route and who may read it.
	resp, err = o.clients["lambda"].Get(o.url + "/.well-known/agent-card.json")
	if err != nil {
		t.Fatal(err)
	}
	var card server.AgentCard
	if err := json.NewDecoder(resp.Body).Decode(&card); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(card.Routes) != 1 {
		t.Fatalf("card routes %+v", card.Routes)
	}
	if r, _ := json.Marshal(card.Routes[0]); !strings.Contains(string(r), `"method":"GET","path":"/metrics"`) ||
		!strings.Contains(string(r), `"allowedCallers":["orchestrator"]`) || !strings.Contains(string(r), `"security":[{"mtls":[]}]`) {
		t.Fatalf("card route %s", r)
	}
}

// TestCallsCountedAndFlushed: each call (each batch element) is counted by
// method and code, methods outside the offered set as "other", and a flush
// writes the same figures as EMF lines.
func TestCallsCountedAndFlushed(t *testing.T) {
	o := startObserved(t)
	token := o.idp.Mint(t, o.idp.EC, tokens.Claims(o.leaves["orchestrator"].Cert), nil)
	post := func(body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, o.url+"/message", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := o.clients["orchestrator"].Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	post(`{"jsonrpc":"2.0","method":"validate_document","id":1}`)
	post(`[{"jsonrpc":"2.0","method":"validate_document","id":1},{"jsonrpc":"2.0","method":"drop_tables","id":2},` +
		`{"jsonrpc":"2.0","method":"get_validation_rules","id":3},{"jsonrpc":"2.0","method":"validate_document"}]`)
	post(`{"jsonrpc":`)
	// An A2A message/send counts under the skill it runs, tasks/get as itself.
	post(sendMsg("1", `{"skill":"validate_document"}`))
	post(getTask("2", "no-such-task", ""))
	req, _ := http.NewRequest(http.MethodPost, o.url+"/message", strings.NewReader("{}"))
	resp, err := o.clients["orchestrator"].Do(req) // no token
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	scrape := func() string {
		resp, err := o.clients["orchestrator"].Get(o.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	text := scrape()
	for _, want := range []string{
		`ca_a2a_rpc_requests_total{code="0",method="validate_document"} 4`,
		`ca_a2a_rpc_requests_total{code="-32001",method="tasks/get"} 1`,
		`ca_a2a_rpc_requests_total{code="-32601",method="other"} 1`,
		`ca_a2a_rpc_requests_total{code="-32603",method="get_validation_rules"} 1`,
		`ca_a2a_rpc_requests_total{code="-32700",method="other"} 1`,
		`ca_a2a_rpc_requests_total{code="-32010",method="other"} 1`,
		`ca_a2a_rpc_duration_seconds_count{method="validate_document"} 4`,
		`ca_a2a_auth_refusals_total{reason="missing_token"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(text, "drop_tables") {
		t.Error("a method outside the offered set has its own series")
	}

	o.m.Flush()
	lines := emftest.Lines(t, []byte(o.emf.String()))
	agent := map[string]string{"Agent": "validator"}
	checks := []struct {
		metric string
		dims   map[string]string
		want   float64
	}{
		{"Requests", agent, 9},
		{"Requests", map[string]string{"Agent": "validator", "Method": "validate_document"}, 4},
		{"Requests", map[string]string{"Agent": "validator", "Method": "tasks/get"}, 1},
		{"Requests", map[string]string{"Agent": "validator", "Method": "get_validation_rules"}, 1},
		{"InternalErrors", agent, 1},
		{"AuthRefusals", map[string]string{"Agent": "validator", "Reason": "missing_token"}, 1},
	}
	for _, c := range checks {
		if got := emftest.Sum(lines, c.metric, c.dims); got != c.want {
			t.Errorf("EMF %s %v = %v, want %v\n%s", c.metric, c.dims, got, c.want, o.emf.String())
		}
	}
	for _, l := range lines {
		if l.Dimensions["Method"] == "validate_document" && len(l.Values["Latency"]) != 4 {
			t.Errorf("validate_document latency samples %v, want 4", l.Values["Latency"])
		}
		if m := l.Dimensions["Method"]; m != "" && m != "validate_document" && m != "get_validation_rules" && m != "tasks/get" {
			t.Errorf("EMF line for method %q, which is not offered or was not called", m)
		}
	}
	// Only what changed since: a second flush says nothing of the calls.
	seen := len(o.emf.String())
	o.m.Flush()
	for _, l := range emftest.Lines(t, []byte(o.emf.String()[seen:])) {
		if _, ok := l.Values["Requests"]; ok || l.Dimensions["Reason"] != "" {
			t.Errorf("second flush repeats a count: %+v", l)
		}
	}
}

// TestHealthReportsExpiry: /health carries the serving certificate's days
// to expiry and stays 200 when it is close.
func TestHealthReportsExpiry(t *testing.T) {
	o := startObserved(t) // pki leaves last a day
	resp, err := o.clients["lambda"].Get(o.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h agentapi.HealthReport
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || h.ExpiresInDays == nil || *h.ExpiresInDays != 0 {
		t.Fatalf("%d %+v", resp.StatusCode, h)
	}
}
