package main

// The archivist on PostgreSQL as it runs in production: the real agent
// binary, called over mTLS with a bound token as the orchestrator calls it,
// on a throwaway PostgreSQL cluster (internal/testutil/pgtest). Two
// processes share one database; one is SIGKILLed while it archives; one
// starts with the database down; one verifies the server against
// ARCHIVE_DB_CA_PATH.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/testutil/agentproc"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/agentclient"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// PostgreSQL tests share a cluster per test binary (a database each) unless
// they stop it or need TLS.
// archivists starts archivist processes that trust one test CA and its
// JWKS, and calls them as the orchestrator.
type archivists struct {
	bin                       string
	certPath, keyPath, caPath string
	jwksURL                   string
	caller                    certload.Source
	token                     string
}

func newArchivists(t *testing.T) *archivists {
	t.Helper()
	ca := pki.NewCA(t, "CA A2A Root CA")
	idp := tokens.New(t, ca)
	a := &archivists{bin: build(t), jwksURL: idp.JWKSURL}
	a.certPath, a.keyPath, a.caPath = pki.WriteFiles(t, t.TempDir(), ca.Issue(t, "archivist"), ca.PEM)
	orch := ca.Issue(t, "orchestrator")
	src, err := certload.FromPEM(orch.CertPEM, orch.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	a.caller = src
	claims := tokens.Claims(orch.Cert)
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	a.token = idp.Mint(t, idp.EC, claims, nil)
	return a
}

// proc is one running archivist.
type proc struct {
	*agentproc.Process
	t      *testing.T
	url    string
	client *agentclient.Client
	http   *http.Client
}

// start runs an archivist with the archive settings in env and waits until
// it answers /health (healthy or not).
func (a *archivists) start(t *testing.T, env map[string]string) *proc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", loopback.Port(t))
	vars := map[string]string{
		"PATH": os.Getenv("PATH"), "AGENT_NAME": "archivist", "AGENT_ADDR": addr,
		"MTLS_CERT_PATH": a.certPath, "MTLS_KEY_PATH": a.keyPath, "MTLS_CA_CERT_PATH": a.caPath,
		"OIDC_JWKS_URL": a.jwksURL, "LOG_LEVEL": "info",
	}
	for k, v := range env {
		vars[k] = v
	}
	p := &proc{Process: agentproc.Start(t, agentproc.Config{Bin: a.bin, Env: vars, Kill: true}), t: t, url: "https://" + addr}
	client, err := agentclient.New(agentclient.Config{Certificate: a.caller, Tokens: staticToken(a.token),
		Peers: map[string]string{agentapi.Archivist: p.url}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	p.client = client
	tr := &http.Transport{TLSClientConfig: certload.ClientConfig(a.caller, agentapi.AuthorizeAgent(agentapi.Archivist), certload.ClientOptions{})}
	t.Cleanup(tr.CloseIdleConnections)
	p.http = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	p.WaitUntil(t, "answer /health", func() bool { code, _ := p.health(); return code != 0 })
	return p
}

// health is /health's status (0: no answer) and its archive check.
func (p *proc) health() (int, string) {
	resp, err := p.http.Get(p.url + "/health")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var rep agentapi.HealthReport
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &rep)
	return resp.StatusCode, rep.Checks["archive"].Status
}

// waitHealth waits, bounded (agentproc.ReadyTimeout), for /health to
// answer code with the archive check in status (reports are cached for
// 2 s); it fails at once if the archivist exits.
func (p *proc) waitHealth(code int, status string) {
	p.t.Helper()
	p.WaitUntil(p.t, fmt.Sprintf("report /health %d with archive %q", code, status), func() bool {
		c, s := p.health()
		return c == code && s == status
	})
}

func (p *proc) call(method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.client.Call(ctx, agentapi.Archivist, method, params, result)
}

type staticToken string

func (s staticToken) Token() (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: string(s), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
}
func (staticToken) Invalidate() {}

// doc is the archive_document params of document id; the extracted data is
// derived from the id, so a row can be checked whole afterwards.
func doc(id string) map[string]any {
	return map[string]any{"document_id": id, "s3_key": "incoming/" + id + ".csv", "bucket": "docs", "file_name": id + ".csv",
		"document_type": "csv", "extracted_data": payload(id), "validation": map[string]any{"score": 80, "passed": true, "issues": []any{}}}
}

func payload(id string) map[string]any {
	return map[string]any{"id": id, "rows": []string{strings.Repeat(id, 40)}}
}

func count(t *testing.T, pool *pgxpool.Pool, q string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// archiveEnv is the environment of an archivist on db, the password in
// ARCHIVE_DB_PASSWORD as in production.
func archiveEnv(c *pgtest.Cluster, db pgtest.Database) map[string]string {
	return map[string]string{"ARCHIVE_DSN": c.DSN(db.Owner, "", db.Name), "ARCHIVE_DB_PASSWORD": db.Password}
}

// Two archivist processes on one database: the same document archived 20
// times at once through both gives one row, one history entry and one
// created:true; 200 distinct documents from 8 concurrent callers spread
// over both give 200 rows.
func TestArchivistsSharePostgres(t *testing.T) {
	c := pgtest.Shared(t)
	db := c.NewDatabase(t)
	a := newArchivists(t)
	procs := []*proc{a.start(t, archiveEnv(c, db)), a.start(t, archiveEnv(c, db))}
	procs[0].waitHealth(200, "ok")
	procs[1].waitHealth(200, "ok")
	pool := db.Pool(t)

	t.Run("same document 20 times", func(t *testing.T) {
		var created atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				var res agentapi.ArchiveResult
				if err := procs[i%2].call(agentapi.MethodArchiveDocument, doc("same"), &res); err != nil {
					t.Error(err)
					return
				}
				if res.Created {
					created.Add(1)
				}
				if res.Status != agentapi.StatusArchived {
					t.Errorf("result %+v", res)
				}
			})
		}
		wg.Wait()
		if n := created.Load(); n != 1 {
			t.Fatalf("%d created:true, want 1", n)
		}
		if n := count(t, pool, `SELECT COUNT(*) FROM documents WHERE document_id = 'same'`); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
		if n := count(t, pool, `SELECT COUNT(*) FROM status_history WHERE document_id = 'same'`); n != 1 {
			t.Fatalf("%d history entries, want 1", n)
		}
	})

	t.Run("200 documents from 8 callers", func(t *testing.T) {
		const docs, callers = 200, 8
		var served [2]atomic.Int32
		var wg sync.WaitGroup
		for w := range callers {
			wg.Go(func() {
				for i := w; i < docs; i += callers {
					var res agentapi.ArchiveResult
					if err := procs[i%2].call(agentapi.MethodArchiveDocument, doc(fmt.Sprintf("many-%03d", i)), &res); err != nil {
						t.Error(err)
						return
					}
					if !res.Created {
						t.Errorf("many-%03d: %+v", i, res)
					}
					served[i%2].Add(1)
				}
			})
		}
		wg.Wait()
		if n := count(t, pool, `SELECT COUNT(*) FROM documents WHERE document_id LIKE 'many-%'`); n != docs {
			t.Fatalf("%d rows, want %d", n, docs)
		}
		if n := count(t, pool, `SELECT COUNT(*) FROM status_history WHERE document_id LIKE 'many-%'`); n != docs {
			t.Fatalf("%d history entries, want %d", n, docs)
		}
		if served[0].Load() != docs/2 || served[1].Load() != docs/2 {
			t.Fatalf("split %d/%d", served[0].Load(), served[1].Load())
		}
		// Each archivist reads what the other wrote.
		var total agentapi.SearchResult
		for _, p := range procs {
			if err := p.call(agentapi.MethodSearchDocuments, agentapi.SearchParams{}, &total); err != nil || total.Total != docs+1 {
				t.Fatalf("search: %d, %v", total.Total, err)
			}
		}
	})
	if strings.Contains(procs[0].Output.String()+procs[1].Output.String(), db.Password) {
		t.Fatal("an archivist logged the database password")
	}
}

// SIGKILL an archivist while 8 callers archive through it: after a
// restart, every acknowledged document is there, whole, and no row is
// half-written (each has exactly its creation in the history).
func TestArchivistKilledWhileArchiving(t *testing.T) {
	c := pgtest.Shared(t)
	db := c.NewDatabase(t)
	a := newArchivists(t)
	p := a.start(t, archiveEnv(c, db))
	p.waitHealth(200, "ok")

	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for n := range 2000 { // bounded; the kill ends it much earlier
				id := fmt.Sprintf("k-%d-%04d", w, n)
				var res agentapi.ArchiveResult
				if err := p.call(agentapi.MethodArchiveDocument, doc(id), &res); err != nil {
					return // the archivist is gone
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 150 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d documents acknowledged in 60s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Kill() // SIGKILL, in the middle of the callers' requests
	wg.Wait()

	q := a.start(t, archiveEnv(c, db))
	q.waitHealth(200, "ok")
	for id := range acked {
		var got agentapi.Document
		if err := q.call(agentapi.MethodGetDocument, agentapi.DocumentIDParams{DocumentID: id}, &got); err != nil {
			t.Fatalf("acknowledged %s: %v", id, err)
		}
	}
	pool := db.Pool(t)
	rows, err := pool.Query(context.Background(), `SELECT d.document_id, d.status, d.extracted_data, d.validation,
		(SELECT COUNT(*) FROM status_history h WHERE h.document_id = d.document_id) FROM documents d`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := 0
	for rows.Next() {
		var id, status string
		var extracted, validation *string
		var history int
		if err := rows.Scan(&id, &status, &extracted, &validation, &history); err != nil {
			t.Fatal(err)
		}
		stored++
		want, _ := json.Marshal(payload(id))
		if status != agentapi.StatusArchived || extracted == nil || *extracted != string(want) || validation == nil || history != 1 {
			t.Errorf("half-written row %s: status %s, extracted %v, history %d", id, status, extracted != nil, history)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if stored < len(acked) {
		t.Fatalf("%d rows, %d acknowledged", stored, len(acked))
	}
	if n := count(t, pool, `SELECT COUNT(*) FROM status_history`); n != stored {
		t.Fatalf("%d history entries for %d rows", n, stored)
	}
	t.Logf("%d acknowledged before the kill, %d stored (the difference committed but unanswered)", len(acked), stored)
}

// The database down when the archivist starts: it starts anyway, /health
// answers 503 with check "archive" failing and archive calls -32002; once
// the database is up, the same process serves, without a restart.
func TestArchivistDatabaseDownAtStart(t *testing.T) {
	c := pgtest.Start(t)
	db := c.NewDatabase(t)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	a := newArchivists(t)
	p := a.start(t, archiveEnv(c, db))
	p.waitHealth(503, agentapi.CheckFailing)
	err := p.call(agentapi.MethodArchiveDocument, doc("early"), nil)
	if jsonrpc.CodeOf(err) != agentapi.CodeUnavailable || !strings.Contains(err.Error(), "archive store unavailable") {
		t.Fatalf("archive with the database down: %v", err)
	}
	pid := p.Pid()

	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	p.waitHealth(200, agentapi.CheckOK)
	var res agentapi.ArchiveResult
	if err := p.call(agentapi.MethodArchiveDocument, doc("late"), &res); err != nil || !res.Created {
		t.Fatalf("archive after recovery: %+v %v", res, err)
	}
	if !p.Alive() || p.Pid() != pid {
		t.Fatal("the archivist exited or restarted")
	}
	for _, want := range []string{"archive database unavailable", "archive database ready", `"check":"archive"`} {
		if !strings.Contains(p.Output.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(p.Output.String(), db.Password) {
		t.Fatal("the archivist logged the database password")
	}
}

// verify-full against ARCHIVE_DB_CA_PATH: the right CA connects (the
// cluster refuses TCP without TLS), another CA is refused; a CA file that
// is missing stops start-up.
func TestArchivistPostgresTLS(t *testing.T) {
	c := pgtest.Start(t, pgtest.WithTLS())
	db := c.NewDatabase(t)
	u := c.URL(db.Owner, "", db.Name)
	q := u.Query()
	q.Del("sslrootcert") // the CA comes from ARCHIVE_DB_CA_PATH
	u.RawQuery = q.Encode()
	a := newArchivists(t)
	other := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(other, pki.NewCA(t, "another CA").PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(ca string) map[string]string {
		return map[string]string{"ARCHIVE_DSN": u.String(), "ARCHIVE_DB_PASSWORD": db.Password, "ARCHIVE_DB_CA_PATH": ca}
	}

	good := a.start(t, env(c.CAPath()))
	good.waitHealth(200, agentapi.CheckOK)
	if err := good.call(agentapi.MethodArchiveDocument, doc("over-tls"), nil); err != nil {
		t.Fatal(err)
	}

	bad := a.start(t, env(other))
	bad.waitHealth(503, agentapi.CheckFailing)
	if err := bad.call(agentapi.MethodArchiveDocument, doc("refused"), nil); jsonrpc.CodeOf(err) != agentapi.CodeUnavailable {
		t.Fatalf("archive through a wrong CA: %v", err)
	}
	if !strings.Contains(bad.Output.String(), "certificate signed by unknown authority") {
		t.Fatalf("the refusal's cause is not logged:\n%s", bad.Output)
	}
	pool := db.Pool(t)
	if n := count(t, pool, `SELECT COUNT(*) FROM documents`); n != 1 {
		t.Fatalf("%d rows, want the one stored over verified TLS", n)
	}

	cmd := exec.Command(a.bin)
	for k, v := range env(filepath.Join(t.TempDir(), "missing.pem")) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "AGENT_NAME=archivist", "AGENT_ADDR=127.0.0.1:0", "MTLS_CERT_PATH="+a.certPath,
		"MTLS_KEY_PATH="+a.keyPath, "MTLS_CA_CERT_PATH="+a.caPath, "OIDC_JWKS_URL="+a.jwksURL)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "ARCHIVE_DB_CA_PATH") {
		t.Fatalf("missing CA file: exit %v\n%s", err, out)
	}
}
