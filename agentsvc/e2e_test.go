package agentsvc_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/orchestrator"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
	"github.com/ca-a2a/ca-a2a/internal/samples"
	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/stack"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/agentclient"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

// caller is a client of the stack with the identity of one certgen leaf.
type caller struct {
	src    certload.Source
	tokens *tokensource.Source
	client *agentclient.Client
}

// newCaller's certificate is read once: it does not follow the files.
func newCaller(t *testing.T, s *stack.Stack, name string) *caller {
	t.Helper()
	return loadCaller(t, s, name, time.Hour)
}

// loadCaller is a caller with the certificate of leaf name, its files
// re-read every poll.
func loadCaller(t *testing.T, s *stack.Stack, name string, poll time.Duration) *caller {
	t.Helper()
	cert, key, ca := s.Leaf(name)
	src, closeFn, err := certload.Load(certload.Config{CertPath: cert, KeyPath: key, CAPath: ca}, certload.Options{PollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	ts, err := tokensource.New(tokensource.Config{TokenURL: s.IdP.TokenURL, ClientID: name, Certificate: src, ServerName: s.IdP.ServerName})
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.New(agentclient.Config{Certificate: src, Tokens: ts, Peers: s.URLs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &caller{src: src, tokens: ts, client: c}
}

// TestPipelineEndToEnd runs the pipeline on each archive engine: SQLite,
// the default, and PostgreSQL (the production store), the password in
// ARCHIVE_DB_PASSWORD as ECS injects it.
func TestPipelineEndToEnd(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { pipelineEndToEnd(t, stack.Start(t)) })
	t.Run("postgres", func(t *testing.T) {
		c := pgtest.Shared(t)
		db := c.NewDatabase(t)
		s := stack.Start(t, stack.ArchiveDSN(c.DSN(db.Owner, "", db.Name), db.Password))
		pipelineEndToEnd(t, s)
		if !strings.Contains(s.Log("archivist"), `"engine":"postgres"`) {
			t.Fatalf("the archivist did not run on PostgreSQL:\n%s", s.Log("archivist"))
		}
	})
}

func pipelineEndToEnd(t *testing.T, s *stack.Stack) {
	s.PutDocument(t, "incoming/invoice.pdf", samples.Invoice())
	s.PutDocument(t, "incoming/transactions.csv", samples.TransactionsCSV())
	s.PutDocument(t, "incoming/ragged.csv", []byte("a,b\n1\n2\n3,4,5\n"))
	s.PutDocument(t, "incoming/corrupt.pdf", []byte("%PDF-1.7\ngarbage"))
	lambda := newCaller(t, s, "lambda")
	ctx := t.Context()

	want := map[string]string{"incoming/invoice.pdf": "archived", "incoming/transactions.csv": "archived", "incoming/ragged.csv": "rejected"}
	ids := map[string]string{}
	for key, status := range want {
		var res agentapi.ProcessResult
		if err := lambda.client.Call(ctx, "orchestrator", agentapi.MethodProcessDocument, agentapi.ProcessDocumentParams{S3Key: key}, &res); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if res.Status != status || !strings.HasPrefix(res.DocumentID, "doc-") || res.Stages.Archive.Details["created"] != true {
			t.Fatalf("%s: %+v, want status %s", key, res, status)
		}
		ids[key] = res.DocumentID
	}
	// Redelivery: same id, nothing archived twice.
	var again agentapi.ProcessResult
	if err := lambda.client.Call(ctx, "orchestrator", agentapi.MethodProcessDocument, agentapi.ProcessDocumentParams{S3Key: "incoming/invoice.pdf"}, &again); err != nil {
		t.Fatal(err)
	}
	if again.DocumentID != ids["incoming/invoice.pdf"] || again.Status != "archived" || again.Stages.Archive.Details["created"] != false {
		t.Fatalf("redelivery: %+v", again)
	}
	var found struct {
		Total     int              `json:"total"`
		Documents []map[string]any `json:"documents"`
	}
	if err := lambda.client.Call(ctx, "archivist", "search_documents", map[string]any{}, &found); err != nil {
		t.Fatal(err)
	}
	if found.Total != 3 {
		t.Fatalf("%d documents archived, want 3", found.Total)
	}

	// Permanent failures (the document itself is refused) are archived
	// with status failed, their stage and cause, once however often they
	// are delivered.
	var big strings.Builder
	big.WriteString("id,name,comment\n")
	for i := 0; big.Len() < 3<<19; i++ {
		fmt.Fprintf(&big, "%d,row-%d,a comment long enough to make this row about sixty bytes\n", i, i)
	}
	s.PutDocument(t, "incoming/big.csv", []byte(big.String()))
	permanent := []struct {
		key, message string
		code         int
	}{
		{"incoming/corrupt.pdf", "document could not be parsed: corrupt or unreadable PDF", jsonrpc.CodeInvalidParams},
		// Extracted data over the 1 MiB hop limit: the extractor stops
		// with -32012 before building it.
		{"incoming/big.csv", "over the 1 MiB hop limit", agentapi.CodeTooLarge},
		// A traversal key is refused before anything is read.
		{"../certs/ca/ca-key.pem", "s3_key is not a valid object key", jsonrpc.CodeInvalidParams},
	}
	for _, tc := range permanent {
		for delivery := range 2 {
			var bad agentapi.ProcessResult
			if err := lambda.client.Call(ctx, "orchestrator", agentapi.MethodProcessDocument, agentapi.ProcessDocumentParams{S3Key: tc.key}, &bad); err != nil {
				t.Fatal(err)
			}
			if bad.Status != "failed" || bad.Failure != agentapi.FailurePermanent || bad.Stages.Extraction.Code != tc.code ||
				!strings.Contains(bad.Stages.Extraction.Message, tc.message) || bad.Stages.Archive.Details["created"] != (delivery == 0) {
				t.Fatalf("%s, delivery %d: %+v %+v", tc.key, delivery, bad, bad.Stages.Archive)
			}
			var doc agentapi.Document
			if err := lambda.client.Call(ctx, "archivist", agentapi.MethodGetDocument, agentapi.DocumentIDParams{DocumentID: bad.DocumentID}, &doc); err != nil {
				t.Fatalf("%s: the failed document is not archived: %v", tc.key, err)
			}
			if doc.Status != "failed" || doc.Stage != "extraction" || !strings.Contains(doc.Error, tc.message) || doc.S3Key != tc.key {
				t.Fatalf("%s: archived as %+v", tc.key, doc.DocumentSummary)
			}
			// A document that was read keeps the id its content gives it
			// (the traversal key is refused before anything is read).
			if !strings.HasPrefix(tc.key, "incoming/") {
				continue
			}
			if content, err := os.ReadFile(filepath.Join(s.DocsDir, tc.key)); err == nil {
				sum := sha256.Sum256(content)
				if doc.SHA256 != hex.EncodeToString(sum[:]) || bad.DocumentID != orchestrator.DocumentID("", tc.key, doc.SHA256) {
					t.Fatalf("%s: id %s, hash %q: not the content's", tc.key, bad.DocumentID, doc.SHA256)
				}
			}
		}
	}
	var failedDocs agentapi.SearchResult
	if err := lambda.client.Call(ctx, "archivist", agentapi.MethodSearchDocuments, agentapi.SearchParams{Status: "failed"}, &failedDocs); err != nil {
		t.Fatal(err)
	}
	if failedDocs.Total != 3 || failedDocs.Documents[0].Stage != "extraction" || failedDocs.Documents[0].Error == "" {
		t.Fatalf("search for failed documents: %+v", failedDocs)
	}
	// The extractor reports its workers and their Landlock level; busy or
	// not, it is healthy.
	pool, err := sandbox.NewPool(sandbox.Config{}) // to read the kernel's level as the extractor does
	if err != nil {
		t.Fatal(err)
	}
	abi := pool.LandlockABI()
	if code, body := rawGet(t, s, "orchestrator", "extractor", "/health"); code != 200 ||
		!strings.Contains(body, fmt.Sprintf(`"extract_workers":{"status":"ok","details":{"busy":0,"total":4,"killed_since_start":0,"landlock":%d}}`, abi)) {
		t.Fatalf("extractor health: %d %s, want landlock %d", code, body, abi)
	}
	if line := logLineWith(s.Log("extractor"), "parses run in sandboxed workers"); !strings.Contains(line, fmt.Sprintf(`"landlock_abi":%d`, abi)) {
		t.Errorf("the extractor does not log its Landlock level %d: %s", abi, line)
	}

	var status map[string]any
	if err := lambda.client.Call(ctx, "orchestrator", "get_document_status", map[string]string{"document_id": ids["incoming/ragged.csv"]}, &status); err != nil || status["status"] != "rejected" {
		t.Fatalf("status: %v %v", status, err)
	}
	if err := lambda.client.Call(ctx, "orchestrator", "get_document_status", map[string]string{"document_id": "doc-0000"}, &status); jsonrpc.CodeOf(err) != agentapi.CodeNotFound {
		t.Fatalf("missing document: %v", err)
	}

	var batch struct {
		Total, Archived, Rejected, Failed int
	}
	if err := lambda.client.Call(ctx, "orchestrator", "process_batch", map[string]string{"prefix": "incoming/", "file_extension": "csv"}, &batch); err != nil {
		t.Fatal(err)
	}
	// transactions archived, ragged rejected, big failed (permanently).
	if batch.Total != 3 || batch.Archived != 1 || batch.Rejected != 1 || batch.Failed != 1 {
		t.Fatalf("batch: %+v", batch)
	}
	var peers struct {
		Agents []struct {
			Agent, Status string
		} `json:"agents"`
	}
	if err := lambda.client.Call(ctx, "orchestrator", "discover_agents", nil, &peers); err != nil || len(peers.Agents) != 3 {
		t.Fatalf("discover: %+v %v", peers, err)
	}
	for _, p := range peers.Agents {
		if p.Status != "healthy" {
			t.Errorf("peer %s: %s", p.Agent, p.Status)
		}
	}

	// The agents counted what happened: the orchestrator its calls to
	// each peer (big.csv stopped at the extractor with -32012, twice
	// delivered and once in the batch); the validator never had to refuse
	// an oversized body, since extraction bounds what travels on.
	code, text := rawGet(t, s, "lambda", "orchestrator", "/metrics")
	calls, err := metrics.Counts(strings.NewReader(text), "ca_a2a_peer_calls_total", "peer")
	if code != 200 || err != nil || calls["extractor"] == 0 || calls["validator"] == 0 || calls["archivist"] == 0 ||
		!strings.Contains(text, `ca_a2a_peer_calls_total{code="-32012",peer="extractor"} 3`) ||
		!strings.Contains(text, `ca_a2a_peer_calls_total{code="-32012",peer="validator"} 0`) {
		t.Fatalf("orchestrator /metrics: %d %v %v\n%s", code, calls, err, text)
	}
	if _, text := rawGet(t, s, "lambda", "validator", "/metrics"); !strings.Contains(text, `ca_a2a_auth_refusals_total{reason="body_too_large"} 0`) {
		t.Fatalf("validator /metrics:\n%s", text)
	}

	// A peer goes down: the document fails at that stage, transiently;
	// nothing is archived, and the orchestrator's health turns 503.
	s.StopAgent("validator")
	s.PutDocument(t, "incoming/late.csv", []byte("x,y\n1,2\n"))
	var down agentapi.ProcessResult
	start := time.Now()
	if err := lambda.client.Call(ctx, "orchestrator", agentapi.MethodProcessDocument, agentapi.ProcessDocumentParams{S3Key: "incoming/late.csv"}, &down); err != nil {
		t.Fatal(err)
	}
	if down.Status != "failed" || down.Failure != agentapi.FailureTransient || down.Stages.Validation.Status != "failed" ||
		down.Stages.Validation.Code != agentapi.CodeUnavailable || time.Since(start) > 20*time.Second {
		t.Fatalf("validator down: %+v", down)
	}
	if err := lambda.client.Call(ctx, "archivist", "search_documents", map[string]any{}, &found); err != nil || found.Total != 6 {
		t.Fatalf("a transient failure archived something: %d documents, want 3 processed and 3 failed: %v", found.Total, err)
	}
	time.Sleep(2100 * time.Millisecond) // health reports are cached for 2s
	if code, body := rawGet(t, s, "lambda", "orchestrator", "/health"); code != 503 || !strings.Contains(body, `"peer:validator":{"status":"failing"`) {
		t.Fatalf("orchestrator health with validator down: %d %s", code, body)
	}
	s.StartAgent("validator")
}

func rawClient(t *testing.T, s *stack.Stack, name, server string) *http.Client {
	t.Helper()
	cert, key, ca := s.Leaf(name)
	src, _, err := certload.Load(certload.Config{CertPath: cert, KeyPath: key, CAPath: ca}, certload.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: certload.ClientConfig(src, agentapi.AuthorizeAgent(server), certload.ClientOptions{})}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func rawGet(t *testing.T, s *stack.Stack, as, server, path string) (int, string) {
	t.Helper()
	resp, err := rawClient(t, s, as, server).Get(s.URLs[server] + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestRejectionsFromOutside observes every rejection of docs/contract.md
// over real TLS against running agents.
func TestRejectionsFromOutside(t *testing.T) {
	s := stack.Start(t)
	lambda := newCaller(t, s, "lambda")
	tok, err := lambda.tokens.Token()
	if err != nil {
		t.Fatal(err)
	}
	kid, key := s.IdP.SigningKey(t)
	mint := func(mod func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"iss": s.IdP.Issuer, "aud": "ca-a2a-agents", "azp": "lambda", "client_id": "lambda",
			"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(),
			"cnf": binding.Confirmation(lambda.src.Bundle().Leaf())}
		mod(c)
		tk := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tk.Header["kid"] = kid
		signed, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	orchURL := s.URLs["orchestrator"] + "/message"
	ping := `{"jsonrpc":"2.0","method":"list_skills","id":1}`

	type resp struct {
		status int
		body   string
		header http.Header
	}
	post := func(client *http.Client, url, token, body string) resp {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		r, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return resp{r.StatusCode, string(b), r.Header}
	}
	asLambda := rawClient(t, s, "lambda", "orchestrator")
	asExtractor := rawClient(t, s, "extractor", "orchestrator")

	t.Run("handshake refusals", func(t *testing.T) {
		stackCA := pki.LoadCA(t, s.CertsDir+"/ca/ca-cert.pem", s.CertsDir+"/ca/ca-key.pem")
		now := time.Now()
		expired := stackCA.Issue(t, "lambda", pki.Validity(now.Add(-48*time.Hour), now.Add(-time.Hour)))
		rogue := pki.NewCA(t, "CA A2A Root CA").Issue(t, "lambda")
		for name, certs := range map[string][]tls.Certificate{
			"no client certificate":     nil,
			"certificate of another CA": {rogue.TLS()},
			"expired certificate":       {expired.TLS()},
		} {
			// The attacker skips server verification: only the server's
			// refusal is under test.
			cfg := &tls.Config{InsecureSkipVerify: true, Certificates: certs}
			tr := &http.Transport{TLSClientConfig: cfg}
			_, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Post(orchURL, "application/json", strings.NewReader(ping))
			tr.CloseIdleConnections()
			if err == nil {
				t.Errorf("%s: request got through", name)
			}
		}
	})

	unauthorized := []struct {
		name, token, reason string
		client              *http.Client
	}{
		{"no token", "", "missing bearer token", asLambda},
		{"token replayed with another certificate", tok.AccessToken, "token is not bound to the presented certificate", asExtractor},
		{"unbound token", mint(func(c jwt.MapClaims) { delete(c, "cnf") }), "not certificate-bound", asLambda},
		{"expired token", mint(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "token expired", asLambda},
		{"wrong audience", mint(func(c jwt.MapClaims) { c["aud"] = "account" }), "wrong audience", asLambda},
		{"wrong issuer", mint(func(c jwt.MapClaims) { c["iss"] = "https://evil.example/realms/ca-a2a" }), "wrong issuer", asLambda},
	}
	for _, tc := range unauthorized {
		t.Run(tc.name, func(t *testing.T) {
			r := post(tc.client, orchURL, tc.token, ping)
			if r.status != 401 || !strings.Contains(r.body, `"code":-32010`) || !strings.Contains(r.body, tc.reason) ||
				!strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="ca-a2a"`) {
				t.Fatalf("%d %s %v", r.status, r.body, r.header)
			}
		})
	}

	good := tok.AccessToken
	cases := []struct {
		name   string
		client *http.Client
		url    string
		body   string
		status int
		want   string
	}{
		{"accepted", asLambda, orchURL, ping, 200, `"agent":"orchestrator"`},
		{"caller not allowed", rawClient(t, s, "lambda", "extractor"), s.URLs["extractor"] + "/message",
			`{"jsonrpc":"2.0","method":"extract_document","params":{"s3_key":"a.pdf"},"id":1}`, 403, `"code":-32011`},
		{"oversized body", asLambda, orchURL, `{"jsonrpc":"2.0","method":"list_skills","params":{"x":"` + strings.Repeat("a", 1<<20) + `"},"id":1}`, 413, `"code":-32012`},
		{"malformed JSON", asLambda, orchURL, `{"jsonrpc":`, 200, `"code":-32700`},
		{"invalid request", asLambda, orchURL, `{"jsonrpc":"1.0","method":"list_skills","id":1}`, 200, `"code":-32600`},
		{"unknown method", asLambda, orchURL, `{"jsonrpc":"2.0","method":"drop_tables","id":1}`, 200, `"code":-32601`},
		{"bad params", asLambda, orchURL, `{"jsonrpc":"2.0","method":"process_document","params":{"s3_key":7},"id":1}`, 200, `"code":-32602`},
		{"empty batch", asLambda, orchURL, `[]`, 200, `"id":null`},
		{"batch with a forbidden element", rawClient(t, s, "lambda", "archivist"), s.URLs["archivist"] + "/message",
			`[{"jsonrpc":"2.0","method":"get_document_stats","id":1},{"jsonrpc":"2.0","method":"archive_document","params":{},"id":2}]`, 200, `"code":-32011`},
		{"notification", asLambda, orchURL, `{"jsonrpc":"2.0","method":"list_skills"}`, 204, ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := post(tc.client, tc.url, good, tc.body)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Fatalf("%d %.300s; want %d and %s", r.status, r.body, tc.status, tc.want)
			}
			if tc.status != 204 && r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
			}
		})
	}

	t.Run("health, card and 404 need no token", func(t *testing.T) {
		for path, want := range map[string]int{"/health": 200, "/.well-known/agent-card.json": 200, "/admin": 404, "/message?x=1": 404} {
			code, body := rawGet(t, s, "lambda", "archivist", path)
			if code != want {
				t.Errorf("GET %s: %d %s", path, code, body)
			}
		}
		_, card := rawGet(t, s, "lambda", "orchestrator", "/.well-known/agent-card.json")
		var c map[string]any
		if err := json.Unmarshal([]byte(card), &c); err != nil || c["name"] != "orchestrator" || c["securitySchemes"].(map[string]any)["mtls"] == nil {
			t.Fatalf("card: %v %s", err, card)
		}
	})
}
