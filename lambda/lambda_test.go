package lambda_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/samples"
	"github.com/ca-a2a/ca-a2a/internal/testutil/emftest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/stack"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/lambda"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/agentclient"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

type env struct {
	stack      *stack.Stack
	cfg        *lambda.Config
	sm         *secretsmanager.Client
	logs       *syncbuf.Buffer
	emf        *syncbuf.Buffer
	handshakes *atomic.Int64
}

// setup runs the system, publishes the certificates to moto_server as
// certgen publish does, and returns the Lambda's configuration.
func setup(t *testing.T, opts ...stack.Option) *env {
	t.Helper()
	s := stack.Start(t, opts...)
	endpoint := moto.Start(t)
	moto.Env(t, endpoint)
	awsCfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(awsCfg)
	if err := certgen.Publish(t.Context(), sm, s.CertsDir, "ca-a2a/", []string{"lambda"}, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"OIDC_ISSUER": s.IdP.Issuer, "OIDC_TOKEN_URL": s.IdP.TokenURL, "OIDC_SERVER_NAME": "keycloak.ca-a2a.local",
		"ORCHESTRATOR_URL": s.URLs["orchestrator"], "FANOUT_CONCURRENCY": "4",
	}
	cfg, err := lambda.ConfigFromEnv(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	s.PutDocument(t, "incoming/invoice.pdf", samples.Invoice())
	s.PutDocument(t, "incoming/transactions.csv", samples.TransactionsCSV())
	s.PutDocument(t, "incoming/with space.csv", []byte("a,b\n1,2\n"))
	return &env{stack: s, cfg: cfg, sm: sm, logs: &syncbuf.Buffer{}, emf: &syncbuf.Buffer{}, handshakes: &atomic.Int64{}}
}

func (e *env) runtime(t *testing.T) *lambda.Runtime {
	t.Helper()
	rt, err := lambda.New(t.Context(), e.cfg, lambda.Deps{SecretsManager: e.sm, HandshakeCounter: e.handshakes,
		Log: slog.New(slog.NewJSONHandler(e.logs, nil)), Stdout: e.emf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return rt
}

func load(t *testing.T, name string) json.RawMessage {
	t.Helper()
	data, err := os.ReadFile("../events/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func withDeadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func failures(t *testing.T, out any) []string {
	t.Helper()
	resp, ok := out.(events.SQSEventResponse)
	if !ok {
		t.Fatalf("SQS answer is %T", out)
	}
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

// TestEvents runs the Lambda's handler on every sample event against the
// four agents, once with each archive engine: SQLite, the default, and
// PostgreSQL, the production store.
func TestEvents(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { invokeEveryEvent(t, setup(t)) })
	t.Run("postgres", func(t *testing.T) {
		c := pgtest.Shared(t)
		db := c.NewDatabase(t)
		e := setup(t, stack.ArchiveDSN(c.DSN(db.Owner, "", db.Name), db.Password))
		invokeEveryEvent(t, e)
		if !strings.Contains(e.stack.Log("archivist"), `"engine":"postgres"`) {
			t.Fatalf("the archivist did not run on PostgreSQL:\n%s", e.stack.Log("archivist"))
		}
	})
}

func invokeEveryEvent(t *testing.T, e *env) {
	rt := e.runtime(t)
	ctx := withDeadline(t, 60*time.Second)

	if _, err := rt.Handler.Invoke(ctx, load(t, "s3-put.json")); err != nil {
		t.Fatalf("S3 event: %v\n%s", err, e.logs)
	}
	out, err := rt.Handler.Invoke(ctx, load(t, "sqs-s3-notification.json"))
	if err != nil || len(failures(t, out)) != 0 {
		t.Fatalf("SQS notification: %v %v\n%s", failures(t, out), err, e.logs)
	}
	out, err = rt.Handler.Invoke(ctx, load(t, "sqs-direct.json"))
	if err != nil || len(failures(t, out)) != 0 {
		t.Fatalf("SQS direct: %v %v", failures(t, out), err)
	}
	out, err = rt.Handler.Invoke(ctx, load(t, "s3-test-event.json"))
	if err != nil || len(failures(t, out)) != 0 {
		t.Fatalf("s3:TestEvent: %v %v", out, err)
	}
	out, err = rt.Handler.Invoke(ctx, load(t, "sqs-mixed-with-poison.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(t, out); len(got) != 2 || got[0] != "poison-1" || got[1] != "missing-1" {
		t.Fatalf("mixed batch failures = %v, want exactly [poison-1 missing-1]\n%s", got, e.logs)
	}
	if !strings.Contains(e.logs.String(), `"msg":"poison message","message_id":"poison-1"`) ||
		!strings.Contains(e.logs.String(), `"s3_key":"incoming/missing.pdf"`) {
		t.Fatalf("failures not logged with their key:\n%s", e.logs)
	}
	// A URL-encoded key ("with+space.csv") reached the orchestrator decoded.
	if !strings.Contains(e.logs.String(), `"s3_key":"incoming/with space.csv","document_id"`) {
		t.Fatalf("URL-encoded key not decoded:\n%s", e.logs)
	}
	if _, err := rt.Handler.Invoke(ctx, json.RawMessage(`{"hello":"world"}`)); err == nil {
		t.Fatal("unsupported event accepted")
	}
	// The three sample documents are in the archive, each once however
	// many events named it.
	var found agentapi.SearchResult
	if err := archivistClient(t, e.stack).Call(ctx, agentapi.Archivist, agentapi.MethodSearchDocuments, agentapi.SearchParams{}, &found); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, d := range found.Documents {
		keys = append(keys, d.S3Key)
	}
	slices.Sort(keys)
	if want := []string{"incoming/invoice.pdf", "incoming/transactions.csv", "incoming/with space.csv"}; !slices.Equal(keys, want) || found.Total != 3 {
		t.Fatalf("archived %v (total %d), want %v", keys, found.Total, want)
	}
}

// TestRevokedOrchestrator: with MTLS_CRL_SECRET_ID the Lambda checks the
// orchestrator's certificate against the CRL that certgen publishes. An
// empty list changes nothing; once the orchestrator's certificate is
// revoked and published, a warm environment refuses it within
// MTLS_CRL_REFRESH (its kept-alive connection included) and a cold one at
// once, and the documents are reported for retry, not lost. The
// revocation is made in a copy of the certificates and published from
// there, so that only the Lambda learns of it: the agents, which apply
// the CRL file of the stack, keep serving the orchestrator.
func TestRevokedOrchestrator(t *testing.T) {
	e := setup(t)
	published := t.TempDir()
	if err := os.CopyFS(published, os.DirFS(e.stack.CertsDir)); err != nil {
		t.Fatal(err)
	}
	publish := func() {
		t.Helper()
		if err := certgen.Publish(t.Context(), e.sm, published, "ca-a2a/", []string{"lambda"}, func(string, ...any) {}); err != nil {
			t.Fatal(err)
		}
	}
	// A CRL secret that does not exist is an init error, not a Lambda
	// that trusts every certificate.
	absent := *e.cfg
	absent.CRL = certload.CRLConfig{SecretID: "ca-a2a/no-such-crl"}
	if _, err := lambda.New(t.Context(), &absent, lambda.Deps{SecretsManager: e.sm}); err == nil ||
		!strings.Contains(err.Error(), "revocation list (MTLS_CRL_SECRET_ID)") {
		t.Fatalf("missing CRL secret: err = %v", err)
	}

	if err := certgen.RefreshCRL(certgen.CRLOptions{Dir: published}); err != nil {
		t.Fatal(err)
	}
	publish()
	// Without a CRL the Lambda says so at init; with one it does not.
	e.runtime(t)
	const noCRL = `"msg":"protection switched off","detail":"no CRL`
	if n := strings.Count(e.logs.String(), noCRL); n != 1 {
		t.Fatalf("%d warnings of a Lambda without a CRL, want 1:\n%s", n, e.logs)
	}
	e.cfg.CRL = certload.CRLConfig{SecretID: "ca-a2a/crl", Refresh: certload.MinCRLRefresh}
	warm := e.runtime(t)
	if n := strings.Count(e.logs.String(), noCRL); n != 1 {
		t.Fatalf("a Lambda with a CRL warned that it has none:\n%s", e.logs)
	}
	event := load(t, "sqs-s3-notification.json")
	invoke := func(rt *lambda.Runtime) []string {
		t.Helper()
		out, err := rt.Handler.Invoke(withDeadline(t, 30*time.Second), event)
		if err != nil {
			t.Fatal(err)
		}
		return failures(t, out)
	}
	if got := invoke(warm); len(got) != 0 {
		t.Fatalf("nothing revoked yet: failures %v\n%s", got, e.logs)
	}

	if err := certgen.Revoke(certgen.RevokeOptions{Dir: published, Name: "orchestrator"}); err != nil {
		t.Fatal(err)
	}
	publish()
	both := []string{"notif-1", "notif-2"}
	deadline := time.Now().Add(certload.MinCRLRefresh + 20*time.Second)
	for {
		got := invoke(warm)
		if slices.Equal(got, both) {
			break
		}
		if len(got) != 0 || time.Now().After(deadline) {
			t.Fatalf("after the revocation: failures %v, want both messages reported\n%s", got, e.logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := invoke(e.runtime(t)); !slices.Equal(got, both) {
		t.Fatalf("cold start after the revocation: failures %v\n%s", got, e.logs)
	}
	// Refused by the Lambda at the handshake, not further down the line.
	if n := strings.Count(e.logs.String(), "server certificate: certload: certificate has been revoked"); n < 4 {
		t.Fatalf("%d documents refused for the orchestrator's revoked certificate, want 4 (2 warm, 2 cold):\n%s", n, e.logs)
	}
}

func TestWarmInvocationReusesTokenAndConnection(t *testing.T) {
	e := setup(t)
	rt := e.runtime(t)
	event := load(t, "sqs-direct.json")
	for i := range 3 {
		out, err := rt.Handler.Invoke(withDeadline(t, 30*time.Second), event)
		if err != nil || len(failures(t, out)) != 0 {
			t.Fatalf("invocation %d: %v %v", i, out, err)
		}
		if i == 0 {
			continue
		}
		if n := rt.Tokens.Fetches(); n != 1 {
			t.Fatalf("invocation %d: %d token requests in all, want 1", i, n)
		}
		if n := e.handshakes.Load(); n != 1 {
			t.Fatalf("invocation %d: %d TLS handshakes in all, want 1", i, n)
		}
	}
	// One EMF line per invocation, on the runtime's stdout: the cold one
	// fetched the token.
	lines := emftest.Lines(t, []byte(e.emf.String()))
	if len(lines) != 3 {
		t.Fatalf("%d EMF lines for 3 invocations:\n%s", len(lines), e.emf.String())
	}
	for i, l := range lines {
		cold := 0.0
		if i == 0 {
			cold = 1
		}
		if l.Value(t, "ColdStart") != cold || l.Value(t, "TokenFetches") != cold || l.Value(t, "DocumentsProcessed") != 1 ||
			l.Value(t, "DocumentsRetried") != 0 || l.Dimensions["Agent"] != "lambda" {
			t.Fatalf("invocation %d: %+v", i, l)
		}
	}
}

func TestFailures(t *testing.T) {
	e := setup(t)

	t.Run("orchestrator down: every id reported", func(t *testing.T) {
		rt := e.runtime(t)
		e.stack.StopAgent("orchestrator")
		defer e.stack.StartAgent("orchestrator")
		out, err := rt.Handler.Invoke(withDeadline(t, 30*time.Second), load(t, "sqs-s3-notification.json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := failures(t, out); len(got) != 2 {
			t.Fatalf("failures %v, want both messages", got)
		}
		if !strings.Contains(e.logs.String(), `"msg":"document failed"`) || !strings.Contains(e.logs.String(), `"code":-32002`) {
			t.Fatalf("failure not logged with its code:\n%s", e.logs)
		}
		if _, err := rt.Handler.Invoke(withDeadline(t, 30*time.Second), load(t, "s3-put.json")); err == nil || !strings.Contains(err.Error(), "incoming/invoice.pdf") {
			t.Fatalf("S3 event with the orchestrator down: %v", err)
		}
	})

	t.Run("deadline nearly spent: calls cut short, ids reported", func(t *testing.T) {
		rt := e.runtime(t)
		// Less time left than the safety margin: no call may start, and
		// every message must be reported, at once.
		rt.Handler.SafetyMargin = 2 * time.Second
		start := time.Now()
		out, err := rt.Handler.Invoke(withDeadline(t, time.Second), load(t, "sqs-s3-notification.json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := failures(t, out); len(got) != 2 || time.Since(start) > 500*time.Millisecond {
			t.Fatalf("failures %v after %s", got, time.Since(start))
		}
		if !strings.Contains(e.logs.String(), "deadline exceeded") {
			t.Fatalf("cut calls not logged:\n%s", e.logs)
		}
	})

	t.Run("init with a missing secret", func(t *testing.T) {
		cfg := *e.cfg
		cfg.Secrets.Key = "ca-a2a/nope-key"
		_, err := lambda.New(t.Context(), &cfg, lambda.Deps{SecretsManager: e.sm})
		if !errors.Is(err, certload.ErrSecretMissing) || !strings.Contains(err.Error(), "ca-a2a/nope-key") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("init with another agent's key", func(t *testing.T) {
		if err := certgen.Publish(t.Context(), e.sm, e.stack.CertsDir, "other/", []string{"extractor"}, func(string, ...any) {}); err != nil {
			t.Fatal(err)
		}
		cfg := *e.cfg
		cfg.Secrets.Key = "other/extractor-key"
		if _, err := lambda.New(t.Context(), &cfg, lambda.Deps{SecretsManager: e.sm}); !errors.Is(err, certload.ErrKeyMismatch) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestFailureClasses runs the real Lambda handler against the real agents:
// a document that can never be extracted is archived as failed and
// acknowledged (not in batchItemFailures, so not retried five times); a
// document that fails because a peer is down is reported for retry and not
// archived, and goes through once the peer is back.
func TestFailureClasses(t *testing.T) {
	e := setup(t)
	rt := e.runtime(t)
	e.stack.PutDocument(t, "incoming/corrupt.pdf", []byte("%PDF-1.7\ngarbage that no reader can parse"))
	e.stack.PutDocument(t, "incoming/late.csv", []byte("x,y\n1,2\n"))
	event, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "permanent-1", EventSource: "aws:sqs", Body: `{"s3_key":"incoming/corrupt.pdf"}`},
		{MessageId: "transient-1", EventSource: "aws:sqs", Body: `{"s3_key":"incoming/late.csv"}`},
	}})
	archivist := archivistClient(t, e.stack)
	search := func(status string) []agentapi.DocumentSummary {
		t.Helper()
		var found agentapi.SearchResult
		if err := archivist.Call(t.Context(), agentapi.Archivist, agentapi.MethodSearchDocuments, agentapi.SearchParams{Status: status}, &found); err != nil {
			t.Fatal(err)
		}
		return found.Documents
	}

	e.stack.StopAgent("validator")
	for delivery := range 2 {
		out, err := rt.Handler.Invoke(withDeadline(t, 30*time.Second), event)
		if err != nil {
			t.Fatal(err)
		}
		if got := failures(t, out); len(got) != 1 || got[0] != "transient-1" {
			t.Fatalf("delivery %d: batchItemFailures %v, want exactly [transient-1]\n%s", delivery, got, e.logs)
		}
		failed := search("failed")
		if len(failed) != 1 || failed[0].S3Key != "incoming/corrupt.pdf" || failed[0].Stage != "extraction" ||
			!strings.Contains(failed[0].Error, "document could not be parsed") {
			t.Fatalf("delivery %d: failed documents %+v, want the corrupt PDF once", delivery, failed)
		}
		for _, status := range []string{"archived", "rejected"} {
			if docs := search(status); len(docs) != 0 {
				t.Fatalf("a transient failure archived something: %+v", docs)
			}
		}
	}
	for _, want := range []string{`"msg":"document failed permanently; acknowledged","bucket":"","s3_key":"incoming/corrupt.pdf"`,
		`"stage":"extraction","code":-32602`, `"s3_key":"incoming/late.csv","code":-32002`} {
		if !strings.Contains(e.logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, e.logs)
		}
	}

	e.stack.StartAgent("validator")
	out, err := rt.Handler.Invoke(withDeadline(t, 30*time.Second), event)
	if err != nil || len(failures(t, out)) != 0 {
		t.Fatalf("with the validator back: %v %v", failures(t, out), err)
	}
	if docs := search("archived"); len(docs) != 1 || docs[0].S3Key != "incoming/late.csv" {
		t.Fatalf("the retried document: %+v", docs)
	}
	if failed := search("failed"); len(failed) != 1 {
		t.Fatalf("failed documents after the retry: %+v", failed)
	}
}

// archivistClient calls the archivist as the Lambda (which may search
// documents), to see what was archived.
func archivistClient(t *testing.T, s *stack.Stack) *agentclient.Client {
	t.Helper()
	cert, key, ca := s.Leaf("lambda")
	src, closeFn, err := certload.Load(certload.Config{CertPath: cert, KeyPath: key, CAPath: ca}, certload.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	ts, err := tokensource.New(tokensource.Config{TokenURL: s.IdP.TokenURL, ClientID: "lambda", Certificate: src, ServerName: "keycloak.ca-a2a.local"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.New(agentclient.Config{Certificate: src, Tokens: ts, Peers: map[string]string{"archivist": s.URLs["archivist"]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		body string
		keys string
		err  bool
	}{
		{`{"s3_key":"a.pdf","bucket":"b"}`, "b/a.pdf", false},
		{`{"s3_key":"a.pdf"}`, "/a.pdf", false},
		{`{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}`, "", false},
		{`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"x+y%2Fz.csv"}}}]}`, "b/x y/z.csv", false},
		{`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"x.csv"}}}]}`, "", false},
		{`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":""},"object":{"key":"x"}}}]}`, "", true},
		{`not json`, "", true},
		{`[]`, "", true},
		{`{"s3_key":""}`, "", true},
		{`{"s3_key":"a","extra":1}`, "", true},
	}
	for _, tc := range tests {
		objs, err := lambda.ParseMessage(tc.body)
		var keys []string
		for _, o := range objs {
			keys = append(keys, o.Bucket+"/"+o.S3Key)
		}
		if (err != nil) != tc.err || strings.Join(keys, ",") != tc.keys {
			t.Errorf("%s: %v %v", tc.body, keys, err)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add(`{"s3_key":"a.pdf","bucket":"b"}`)
	f.Add(`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		objs, err := lambda.ParseMessage(body)
		if err == nil {
			for _, o := range objs {
				if o.S3Key == "" {
					t.Fatal("object without key")
				}
			}
		}
	})
}
