package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/samples"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// Pipeline stores.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// stage is one server-side step of process_document, read from the
// ca_a2a_rpc_duration_seconds histogram of the agent that runs it: the
// time from the request's arrival (TLS already done) to its answer,
// authentication included.
type stage struct {
	name, agent, method string
}

var stages = []stage{
	{"orchestrator (whole process_document)", agentapi.Orchestrator, agentapi.MethodProcessDocument},
	{"extraction", agentapi.Extractor, agentapi.MethodExtractDocument},
	{"already archived? (get_document)", agentapi.Archivist, agentapi.MethodGetDocument},
	{"validation", agentapi.Validator, agentapi.MethodValidateDocument},
	{"archive", agentapi.Archivist, agentapi.MethodArchiveDocument},
}

// requestsPerDocument are the authenticated requests one document costs:
// the Lambda's to the orchestrator and the orchestrator's four (one per
// stage after the first).
var requestsPerDocument = len(stages)

// pipelineLevel is what one concurrency gave.
type pipelineLevel struct {
	concurrency int
	docs, errs  int
	first       string
	elapsed     time.Duration
	latencies   []time.Duration
	// stage time per document, by stages index (seconds summed / docs)
	stage []time.Duration
	// cpu per document, by agent, and the bench process (the caller)
	cpu       map[string]time.Duration
	callerCPU time.Duration
	// machineBusy is the share of the machine's CPU busy meanwhile, all
	// processes (PostgreSQL's and other users' too).
	machineBusy float64
}

func (l pipelineLevel) rate() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.docs) / l.elapsed.Seconds()
}

func (l pipelineLevel) quantile(q float64) time.Duration { return quantile(l.latencies, q) }

// pipelineRows runs the four agents as processes (production build) on
// store and pushes o.PipelineDocs small CSV documents through
// process_document at each of o.PipelineConcurrency (rows 12, SQLite, and
// 13, PostgreSQL).
func pipelineRows(ctx context.Context, tb testing.TB, o Options, bins *binaries, store, id string) []Row {
	var archiveEnv map[string]string
	dbPid := 0 // PostgreSQL's postmaster
	if store == StorePostgres {
		// First, so that a machine without PostgreSQL skips before anything else.
		cluster := pgtest.Start(tb)
		db := cluster.NewDatabase(tb)
		archiveEnv = map[string]string{"ARCHIVE_DSN": cluster.DSN(db.Owner, "", db.Name), "ARCHIVE_DB_PASSWORD": db.Password}
		dbPid = cluster.PID()
	}
	b := bins.get(tb)
	f := NewFixture(tb)
	agents := append(agentapi.Peers(), agentapi.Orchestrator)
	fl := f.WriteFiles(tb, agents...)
	docs := tb.TempDir()
	if archiveEnv == nil {
		archiveEnv = map[string]string{"ARCHIVE_DSN": "sqlite://" + filepath.Join(tb.TempDir(), "archive.db")}
	}
	ports := map[string]int{}
	for _, a := range agents {
		ports[a] = loopback.Port(tb)
	}
	procs := map[string]*Process{}
	for _, a := range agents { // peers first, as the orchestrator calls them
		env := f.AgentEnv(fl, a, ports[a])
		env["DOCUMENTS_URL"] = "file://" + docs
		for k, v := range archiveEnv {
			env[k] = v
		}
		for _, p := range agents {
			env[strings.ToUpper(p)+"_URL"] = fmt.Sprintf("https://127.0.0.1:%d", ports[p])
		}
		procs[a] = f.StartProcess(tb, b.Agent, env)
	}
	orch := procs[agentapi.Orchestrator]
	token := f.readToken(tb, fl)
	levels := o.PipelineConcurrency
	client := pipelineClient(tb, f, slices.Max(levels))

	// The documents: distinct, so that none is "already archived".
	write := func(prefix string, n int) []string {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s/doc-%05d.csv", prefix, i)
			body := append(samples.TransactionsCSV(), fmt.Sprintf("2026-11-04;FR76BENCH%011d;%d.00;EUR\n", i, i)...)
			path := filepath.Join(docs, filepath.FromSlash(keys[i]))
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				tb.Fatal(err)
			}
			if err := os.WriteFile(path, body, 0o600); err != nil {
				tb.Fatal(err)
			}
		}
		return keys
	}
	// Warm-up: connections on every hop, the orchestrator's token, the
	// JWKS; a full wave at the highest concurrency so that the
	// orchestrator's pools hold enough connections.
	warm := pushDocuments(ctx, client, orch.URL, token, write("warm", slices.Max(levels)), slices.Max(levels))
	if warm.errs > 0 {
		tb.Fatalf("pipeline warm-up: %d of %d documents failed, first: %s\n%s", warm.errs, warm.errs+warm.docs, warm.first, orch.Log())
	}

	var results []pipelineLevel
	for _, c := range levels {
		if ctx.Err() != nil {
			break
		}
		keys := write(fmt.Sprintf("c%02d", c), o.PipelineDocs)
		before := scrapeStages(tb, f, procs)
		cpu0 := map[string]CPUTime{}
		for a, p := range procs {
			cpu0[a] = p.TreeCPU(tb)
		}
		db0 := dbCPU(tb, dbPid)
		self0, _ := ReadCPU(0)
		m0, _ := ReadMachineCPU()
		lv := pushDocuments(ctx, client, orch.URL, token, keys, c)
		m1, _ := ReadMachineCPU()
		self1, _ := ReadCPU(0)
		lv.machineBusy = m1.BusyShare(m0)
		after := scrapeStages(tb, f, procs)
		lv.cpu = map[string]time.Duration{}
		n := time.Duration(max(lv.docs, 1))
		for a, p := range procs {
			lv.cpu[a] = p.TreeCPU(tb).Sub(cpu0[a]).Total() / n
		}
		if dbPid != 0 {
			lv.cpu["postgres"] = dbCPU(tb, dbPid).Sub(db0).Total() / n
		}
		lv.callerCPU = self1.Sub(self0).Self / n
		for i := range stages {
			lv.stage = append(lv.stage, time.Duration((after[i]-before[i])*1e9)/n)
		}
		if lv.errs > 0 {
			tb.Logf("pipeline %s at %d in flight: %d documents failed, first: %s", store, c, lv.errs, lv.first)
		}
		if lv.docs == 0 {
			tb.Fatalf("pipeline %s at %d in flight: no document processed; first failure: %s\n%s", store, c, lv.first, orch.Log())
		}
		results = append(results, lv)
	}
	name := map[string]string{StoreSQLite: "SQLite", StorePostgres: "PostgreSQL"}[store]
	var rows []Row
	for i, lv := range results {
		row := Row{ID: fmt.Sprintf("%s%c", id, 'a'+i),
			Title: fmt.Sprintf("pipeline, %s archive: process_document, %d in flight (4 agent processes)", name, lv.concurrency),
			Of:    fmt.Sprintf("documents/s at %d in flight ÷ documents/s at %d in flight", lv.concurrency, results[0].concurrency),
			Ratio: ratio(lv.rate(), results[0].rate())}
		var agentCPU time.Duration
		for _, a := range agents {
			agentCPU += lv.cpu[a]
		}
		busy := (float64(agentCPU+lv.cpu["postgres"]+lv.callerCPU) * lv.rate()) / 1e9 / float64(runtime.NumCPU())
		var st []string
		for j, s := range stages {
			st = append(st, fmt.Sprintf("%s %.2f ms", s.name, msf(lv.stage[j])))
		}
		var cp []string
		for _, a := range agents {
			cp = append(cp, fmt.Sprintf("%s %.2f", a, msf(lv.cpu[a])))
		}
		if store == StorePostgres {
			cp = append(cp, fmt.Sprintf("PostgreSQL %.2f", msf(lv.cpu["postgres"])))
		}
		row.Detail = fmt.Sprintf("%.0f documents/s, p50 %.2f ms, p99 %.2f ms per document (%d documents", lv.rate(), msf(lv.quantile(0.5)), msf(lv.quantile(0.99)), lv.docs)
		if lv.errs > 0 {
			row.Detail += fmt.Sprintf(", %d failed", lv.errs)
		}
		row.Detail += fmt.Sprintf("). Server time per document: %s. CPU ms per document: %s, caller %.2f; these processes kept %.0f %% of %d cores busy, the machine was %.0f %% busy",
			strings.Join(st, ", "), strings.Join(cp, ", "), msf(lv.callerCPU), 100*busy, runtime.NumCPU(), 100*lv.machineBusy)
		row.Values = map[string]float64{"docs_per_s": lv.rate(), "p50_ms": msf(lv.quantile(0.5)), "p99_ms": msf(lv.quantile(0.99)),
			"documents": float64(lv.docs), "errors": float64(lv.errs), "concurrency": float64(lv.concurrency), "cores_busy": busy, "machine_busy": lv.machineBusy,
			"caller_cpu_ms_per_doc": msf(lv.callerCPU), "agents_cpu_ms_per_doc": msf(agentCPU)}
		for j, s := range stages {
			row.Values["stage_ms_"+s.agent+"_"+s.method] = msf(lv.stage[j])
		}
		for a, c := range lv.cpu {
			row.Values["cpu_ms_per_doc_"+a] = msf(c)
		}
		rows = append(rows, row)
	}
	return rows
}

// dbCPU is the CPU time of PostgreSQL's processes (none: zero).
func dbCPU(tb testing.TB, pid int) CPUTime {
	tb.Helper()
	if pid == 0 {
		return CPUTime{}
	}
	c, err := TreeCPU(pid)
	if err != nil {
		tb.Fatalf("PostgreSQL: %v", err)
	}
	return c
}

// pipelineClient is the Lambda's side: its certificate, the orchestrator
// verified by name, conns keep-alive connections.
func pipelineClient(tb testing.TB, f *Fixture, conns int) *http.Client {
	tr := &http.Transport{
		TLSClientConfig: certload.ClientConfig(f.ClientSrc, agentapi.AuthorizeAgent(agentapi.Orchestrator),
			certload.ClientOptions{ServerName: agentapi.DNSName(agentapi.Orchestrator)}),
		DialContext:  (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// pushDocuments sends process_document for each key, c at a time, and
// times each document.
func pushDocuments(ctx context.Context, client *http.Client, url, token string, keys []string, c int) pipelineLevel {
	lv := pipelineLevel{concurrency: c}
	next := make(chan string, len(keys))
	for _, k := range keys {
		next <- k
	}
	close(next)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Go(func() {
			for k := range next {
				if ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := processOne(ctx, client, url, token, k)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					lv.errs++
					if lv.first == "" {
						lv.first = err.Error()
					}
				} else {
					lv.docs++
					lv.latencies = append(lv.latencies, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	lv.elapsed = time.Since(start)
	return lv
}

func processOne(ctx context.Context, client *http.Client, url, token, key string) error {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": agentapi.MethodProcessDocument,
		"params": agentapi.ProcessDocumentParams{S3Key: key}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/message", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var rpc struct {
		Result *agentapi.ProcessResult `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(out, &rpc) != nil || rpc.Result == nil {
		return fmt.Errorf("HTTP %d %.300s", resp.StatusCode, out)
	}
	if s := rpc.Result.Status; s != agentapi.StatusArchived && s != agentapi.StatusRejected {
		return fmt.Errorf("%s: %s %.300s", key, s, out)
	}
	return nil
}

// scrapeStages reads, for each of stages, the sum of
// ca_a2a_rpc_duration_seconds of its agent's method (seconds).
func scrapeStages(tb testing.TB, f *Fixture, procs map[string]*Process) []float64 {
	tb.Helper()
	sums := map[string]map[string]float64{}
	for a, p := range procs {
		client := f.HTTPClient(tb, a, 1)
		resp, err := client.Get(p.URL + "/metrics")
		if err != nil {
			tb.Fatalf("%s /metrics: %v", a, err)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			tb.Fatalf("%s /metrics: %v", a, err)
		}
		sums[a] = map[string]float64{}
		if fam, ok := fams["ca_a2a_rpc_duration_seconds"]; ok {
			for _, m := range fam.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "method" && m.GetHistogram() != nil {
						sums[a][l.GetValue()] = m.GetHistogram().GetSampleSum()
					}
				}
			}
		}
		client.CloseIdleConnections()
	}
	out := make([]float64, len(stages))
	for i, s := range stages {
		out[i] = sums[s.agent][s.method]
	}
	return out
}
