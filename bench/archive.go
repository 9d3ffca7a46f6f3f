package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/archivist"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// archiveTarget is one archivist server on one store.
type archiveTarget struct {
	name   string
	url    string
	store  archive.Store
	client *http.Client
	acc    archiveAcc
}

// archiveAcc accumulates one target's measured calls.
type archiveAcc struct {
	ok, errs  atomic.Int64
	elapsed   time.Duration
	mu        sync.Mutex
	latencies []time.Duration
	first     string
}

// archiveRows measures archive_document (row 7): documents archived per
// second by o.Concurrency callers, each sending the next distinct document
// as soon as the previous one is answered, through a real archivist server
// (the whole auth chain, the orchestrator's certificate and a token bound to
// it) on SQLite and on PostgreSQL, alternating in rounds.
func archiveRows(ctx context.Context, tb testing.TB, o Options) []Row {
	row := Row{ID: "7", Title: fmt.Sprintf("archive store: archive_document on PostgreSQL vs SQLite, %d callers", o.Concurrency),
		Of: "documents/s archived on PostgreSQL ÷ documents/s on SQLite (distinct documents, real archivist server over mTLS)"}
	// First, so that a machine without PostgreSQL skips before anything else.
	cluster := pgtest.Start(tb)
	f := NewFixture(tb)
	orch := f.CA.Issue(tb, agentapi.Orchestrator)
	src, err := certload.FromPEM(orch.CertPEM, orch.KeyPEM, f.CA.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
	if err != nil {
		tb.Fatal(err)
	}
	claims := tokens.Claims(orch.Cert)
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	token := f.IdP.Mint(tb, f.IdP.EC, claims, nil)

	db := cluster.NewDatabase(tb)
	configs := []struct {
		name string
		cfg  archive.Config
	}{
		{"sqlite", archive.Config{DSN: archive.DSNScheme + filepath.Join(tb.TempDir(), "archive.db")}},
		{"postgres", archive.Config{DSN: cluster.DSN(db.Owner, "", db.Name), Password: db.Password}},
	}
	var targets []*archiveTarget
	for _, c := range configs {
		s, err := archive.Open(ctx, c.cfg, discardLog())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		agent := f.StartAgent(tb, agentapi.Archivist, archivist.New(s, archivist.WithLogger(discardLog())).Methods()...)
		tr := &http.Transport{
			TLSClientConfig: certload.ClientConfig(src, agentapi.AuthorizeAgent(agentapi.Archivist),
				certload.ClientOptions{ServerName: agentapi.DNSName(agentapi.Archivist)}),
			DialContext:  (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns: o.Concurrency, MaxIdleConnsPerHost: o.Concurrency, MaxConnsPerHost: o.Concurrency,
		}
		tb.Cleanup(tr.CloseIdleConnections)
		targets = append(targets, &archiveTarget{name: c.name, url: agent.URL + "/message", store: s,
			client: &http.Client{Transport: tr, Timeout: 30 * time.Second}})
	}

	var seq atomic.Int64
	next := func() int64 { return seq.Add(1) }
	for _, t := range targets {
		if o.Warmup > 0 {
			archiveLoad(ctx, t, token, o, o.Warmup, next, false)
		}
	}
	rounds := max(o.Rounds, 1)
	for r := 0; r < rounds && ctx.Err() == nil; r++ {
		for _, t := range targets {
			archiveLoad(ctx, t, token, o, o.Duration/time.Duration(rounds), next, true)
		}
	}

	// The stores hold every document they acknowledged: the count is of
	// documents archived, not of answers.
	for _, t := range targets {
		st, err := t.store.Stats(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if st.Total < int(t.acc.ok.Load()) {
			tb.Fatalf("%s: %d documents stored, %d acknowledged", t.name, st.Total, t.acc.ok.Load())
		}
	}
	version := "?"
	if conn, err := pgx.Connect(ctx, db.DSN); err == nil {
		var v string
		if conn.QueryRow(ctx, "SHOW server_version").Scan(&v) == nil && v != "" {
			version = strings.Fields(v)[0]
		}
		conn.Close(ctx)
	}

	rate := func(t *archiveTarget) float64 {
		if t.acc.elapsed <= 0 {
			return 0
		}
		return float64(t.acc.ok.Load()) / t.acc.elapsed.Seconds()
	}
	sq, pg := targets[0], targets[1]
	row.Ratio = ratio(rate(pg), rate(sq))
	row.Detail = fmt.Sprintf("PostgreSQL %s: %s; SQLite: %s. Both on this machine's disk: PostgreSQL a throwaway cluster with fsync off, "+
		"SQLite in WAL with synchronous=NORMAL, each durable against a crashed process, not a lost machine (RDS syncs every commit, over a network)",
		version, archiveText(pg, rate(pg)), archiveText(sq, rate(sq)))
	row.Values = map[string]float64{"postgres_docs_per_s": rate(pg), "sqlite_docs_per_s": rate(sq),
		"postgres_p50_ms": msf(pg.acc.quantile(0.5)), "postgres_p99_ms": msf(pg.acc.quantile(0.99)),
		"sqlite_p50_ms": msf(sq.acc.quantile(0.5)), "sqlite_p99_ms": msf(sq.acc.quantile(0.99)),
		"postgres_errors": float64(pg.acc.errs.Load()), "sqlite_errors": float64(sq.acc.errs.Load())}
	for _, t := range targets {
		if t.acc.errs.Load() > 0 {
			tb.Logf("%s: %d calls failed, first: %s", t.name, t.acc.errs.Load(), t.acc.first)
		}
	}
	return []Row{row}
}

func archiveText(t *archiveTarget, rate float64) string {
	s := fmt.Sprintf("%.0f docs/s, p50 %.2f ms, p99 %.2f ms (%d documents", rate, msf(t.acc.quantile(0.5)), msf(t.acc.quantile(0.99)), t.acc.ok.Load())
	if n := t.acc.errs.Load(); n > 0 {
		s += fmt.Sprintf(", %d failed", n)
	}
	return s + ")"
}

func (a *archiveAcc) quantile(q float64) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return quantile(a.latencies, q)
}

// archiveLoad runs o.Concurrency callers against t for d (and at most
// o.MaxRequests calls), each archiving distinct documents one after the
// other; measured calls are added to t.acc.
func archiveLoad(ctx context.Context, t *archiveTarget, token string, o Options, d time.Duration, next func() int64, measure bool) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var calls atomic.Uint64
	start := time.Now()
	var wg sync.WaitGroup
	for range max(o.Concurrency, 1) {
		wg.Go(func() {
			for ctx.Err() == nil && calls.Add(1) <= o.MaxRequests {
				t0 := time.Now()
				err := archiveOne(ctx, t, token, next())
				if ctx.Err() != nil && err != nil {
					return // cut by the end of the round, not a failure
				}
				if !measure {
					continue
				}
				if err != nil {
					if t.acc.errs.Add(1) == 1 {
						t.acc.mu.Lock()
						t.acc.first = err.Error()
						t.acc.mu.Unlock()
					}
					continue
				}
				t.acc.ok.Add(1)
				t.acc.mu.Lock()
				t.acc.latencies = append(t.acc.latencies, time.Since(t0))
				t.acc.mu.Unlock()
			}
		})
	}
	wg.Wait()
	if measure {
		t.acc.elapsed += time.Since(start)
	}
}

// archiveOne archives document n (about 2 KiB of extracted data, as a small
// CSV gives) and checks that it was created.
func archiveOne(ctx context.Context, t *archiveTarget, token string, n int64) error {
	id := fmt.Sprintf("bench-%s-%08d", t.name, n)
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": n, "method": agentapi.MethodArchiveDocument,
		"params": map[string]any{"document_id": id, "s3_key": "incoming/" + id + ".csv", "bucket": "docs", "file_name": id + ".csv",
			"document_type": "csv", "extracted_data": map[string]any{"headers": []string{"id", "amount"}, "rows": []string{strings.Repeat("1,2.50;", 290)}},
			"validation": map[string]any{"score": 90, "passed": true, "issues": []any{}}}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"created":true`)) {
		return fmt.Errorf("HTTP %d %.200s", resp.StatusCode, out)
	}
	return nil
}
