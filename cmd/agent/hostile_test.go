package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor/pdftest"
	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/samples"
	"github.com/ca-a2a/ca-a2a/internal/testutil/agentproc"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/agentclient"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

// maxAgentRSS bounds the agent process's peak resident memory (VmHWM)
// through any hostile document: its own work is reading at most
// EXTRACT_MAX_BYTES per slot and passing on at most 1 MiB; the parse
// happens in workers, whose memory is theirs.
const maxAgentRSS = 300 << 20

// extractorProc is the real agent binary serving as the extractor over
// mTLS, and a client calling it as the orchestrator does.
type extractorProc struct {
	*agentproc.Process
	docs    string
	client  *agentclient.Client
	health  *http.Client
	url     string
	timeout time.Duration // EXTRACT_TIMEOUT
}

// startExtractor runs cmd/agent as the extractor with the given EXTRACT_*
// settings: certgen certificates, an in-process identity provider (JWKS
// and token endpoint over mTLS), documents in a directory.
func startExtractor(t *testing.T, extract map[string]string) *extractorProc {
	t.Helper()
	bin := build(t)
	base := t.TempDir()
	certs := filepath.Join(base, "certs")
	if err := certgen.Generate(certgen.Options{Dir: certs}); err != nil {
		t.Fatal(err)
	}
	caPath, caKey := certgen.CAPaths(certs)
	idp := tokens.New(t, pki.LoadCA(t, caPath, caKey))
	cert, key := certgen.LeafPaths(certs, "extractor")
	p := &extractorProc{docs: filepath.Join(base, "docs")}
	if err := os.MkdirAll(p.docs, 0o700); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", loopback.Port(t))
	p.url = "https://" + addr
	env := map[string]string{"AGENT_NAME": "extractor", "AGENT_ADDR": addr, "MTLS_CERT_PATH": cert, "MTLS_KEY_PATH": key,
		"MTLS_CA_CERT_PATH": caPath, "OIDC_JWKS_URL": idp.JWKSURL, "DOCUMENTS_URL": "file://" + p.docs, "LOG_LEVEL": "info"}
	for k, v := range extract {
		env[k] = v
	}
	var err error
	if p.timeout, err = time.ParseDuration(env["EXTRACT_TIMEOUT"]); err != nil {
		t.Fatalf("EXTRACT_TIMEOUT: %v", err)
	}
	p.Process = agentproc.Start(t, agentproc.Config{Bin: bin, Env: env})

	orch, orchKey := certgen.LeafPaths(certs, "orchestrator")
	src, closeSrc, err := certload.Load(certload.Config{CertPath: orch, KeyPath: orchKey, CAPath: caPath}, certload.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSrc() })
	ts, err := tokensource.New(tokensource.Config{TokenURL: idp.TokenURL, ClientID: "orchestrator", Certificate: src, ServerName: "keycloak.ca-a2a.local"})
	if err != nil {
		t.Fatal(err)
	}
	if p.client, err = agentclient.New(agentclient.Config{Certificate: src, Tokens: ts, Peers: map[string]string{"extractor": p.url}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.client.Close)
	tr := &http.Transport{TLSClientConfig: certload.ClientConfig(src, agentapi.AuthorizeAgent(agentapi.Extractor), certload.ClientOptions{})}
	t.Cleanup(tr.CloseIdleConnections)
	p.health = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	p.WaitUntil(t, "answer /health with its workers", func() bool { _, err := p.workers(); return err == nil })
	return p
}

func (p *extractorProc) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.docs, key), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// extract calls extract_document as the orchestrator, bounded by a minute
// (a hang fails the call; the bound under test is asserted by the caller).
func (p *extractorProc) extract(key string) (*agentapi.ExtractResult[json.RawMessage], time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res agentapi.ExtractResult[json.RawMessage]
	start := time.Now()
	err := p.client.Call(ctx, agentapi.Extractor, agentapi.MethodExtractDocument, agentapi.ExtractParams{S3Key: key}, &res)
	return &res, time.Since(start), err
}

// workers reads the extract_workers check of /health.
func (p *extractorProc) workers() (agentapi.ExtractWorkers, error) {
	resp, err := p.health.Get(p.url + "/health")
	if err != nil {
		return agentapi.ExtractWorkers{}, err
	}
	defer resp.Body.Close()
	var report struct {
		Status string `json:"status"`
		Checks map[string]struct {
			Status  string                  `json:"status"`
			Details agentapi.ExtractWorkers `json:"details"`
		} `json:"checks"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&report); err != nil {
		return agentapi.ExtractWorkers{}, err
	}
	c, ok := report.Checks["extract_workers"]
	if !ok || c.Status != agentapi.CheckOK {
		return agentapi.ExtractWorkers{}, fmt.Errorf("extract_workers check %+v in a %s report", c, report.Status)
	}
	return c.Details, nil
}

// alive reports whether the agent is still the process started: not
// exited, same PID.
func (p *extractorProc) alive() bool {
	return p.Alive() && syscall.Kill(p.Pid(), 0) == nil
}

// peakRSS returns the agent's VmHWM, the peak of its resident memory.
func (p *extractorProc) peakRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q", v)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// resetPeak sets VmHWM back to the current RSS (clear_refs "5"), so that
// each case's peak can be read on its own. It needs the right to write the
// agent's clear_refs (root here, the agent being non-dumpable); without it
// the peaks are cumulative, which only makes the bound stricter.
func (p *extractorProc) resetPeak() bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.Pid()), []byte("5"), 0) == nil
}

// Hostile CSVs, generated.
func escapingCSV(size int) []byte {
	// A quoted field of '<', '"' (doubled), '\' and a control character:
	// 5 bytes that JSON-encode to 11 (21 with HTML escaping).
	line := `"` + strings.Repeat("<\"\"\\\x01", 1<<10) + `"` + "\n"
	return []byte("a\n" + strings.Repeat(line, size/len(line)))
}

func hugeFieldCSV(size int) []byte {
	return []byte("a\n" + strings.Repeat("x", size-3) + "\n")
}

// TestHostileDocuments runs the hostile corpus against the real agent
// binary over mTLS, one document at a time. For each: a clean answer of
// the expected class within EXTRACT_TIMEOUT + 5 s, the agent still the
// same process, and its peak RSS under 300 MiB.
func TestHostileDocuments(t *testing.T) {
	if testing.Short() {
		t.Skip("generates about 80 MiB of hostile documents and parses them in worker processes")
	}
	p := startExtractor(t, map[string]string{"EXTRACT_TIMEOUT": "3s", "EXTRACT_WORKERS": "4", "EXTRACT_MEMORY_LIMIT": "256MiB", "EXTRACT_MAX_BYTES": "20MiB"})
	limits := []string{"time limit", "memory limit", "cpu limit"}
	cases := []struct {
		name   string
		key    string
		doc    func() []byte
		code   int
		causes []string // one of them follows "document could not be parsed: "
	}{
		{"valid PDF", "valid.pdf", samples.Invoice, 0, nil},
		{"xref entry numbered near 2^40", "xref-2p40.pdf", func() []byte { return pdftest.XrefEntryAt(1<<40 - 8) }, jsonrpc.CodeInvalidParams, []string{"memory limit"}},
		{"/Size in the billions", "size-4e9.pdf", func() []byte { return pdftest.XrefStreamSize(4_000_000_000) }, jsonrpc.CodeInvalidParams, []string{"memory limit"}},
		// Loops: the clock ends them (a cause among the limits is
		// accepted: the point is a clean, bounded answer).
		{"/Prev cycle of one step", "prev-1.pdf", func() []byte { return pdftest.PrevCycle(1) }, jsonrpc.CodeInvalidParams, limits},
		{"/Prev cycle of two steps", "prev-2.pdf", func() []byte { return pdftest.PrevCycle(2) }, jsonrpc.CodeInvalidParams, limits},
		{"4 million nested arrays", "arrays.pdf", func() []byte { return pdftest.NestedArrays(4 << 20) }, jsonrpc.CodeInvalidParams, append([]string{"corrupt or unreadable PDF"}, limits...)},
		{"2 million nested dictionaries", "dicts.pdf", func() []byte { return pdftest.NestedDicts(2 << 20) }, jsonrpc.CodeInvalidParams, append([]string{"corrupt or unreadable PDF"}, limits...)},
		{"FlateDecode stream inflating to 1 GiB", "flate-1g.pdf", func() []byte { return pdftest.FlateBomb(1 << 30) }, jsonrpc.CodeInvalidParams, []string{"PDF content exceeds 134217728 bytes once decompressed"}},
		{"object stream inside itself", "objstm-self.pdf", pdftest.ObjectStreamInItself, jsonrpc.CodeInvalidParams, limits},
		{"object stream extending itself", "objstm-extends.pdf", pdftest.ObjectStreamExtendsItself, jsonrpc.CodeInvalidParams, limits},
		{"CSV escaping to several times its size (16 MiB)", "escapes.csv", func() []byte { return escapingCSV(16 << 20) }, agentapi.CodeTooLarge, nil},
		{"CSV of one 20 MiB field", "field.csv", func() []byte { return hugeFieldCSV(20 << 20) }, agentapi.CodeTooLarge, nil},
	}
	resettable := p.resetPeak()
	if !resettable {
		t.Log("clear_refs not writable: peaks below are cumulative")
	}
	var peak int64
	for _, tc := range cases {
		doc := tc.doc()
		p.put(t, tc.key, doc)
		p.resetPeak()
		res, took, err := p.extract(tc.key)
		rss := p.peakRSS(t)
		peak = max(peak, rss)
		t.Logf("%-48s %8d bytes: %7s, agent VmHWM %3d MiB: %v", tc.name, len(doc), took.Round(time.Millisecond), rss>>20, errOrOK(err))
		switch {
		case tc.code == jsonrpc.CodeInvalidParams && slices.Contains(tc.causes, "time limit") && starved(err):
			// Four workers share this machine with the other tests: a
			// looping parse that did not get half a CPU is answered as
			// an overloaded extractor (transient), which is as clean
			// and bounded.
			t.Logf("%s: starved of CPU on this machine: %v", tc.name, err)
		case tc.code == 0 && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.code == 0 && (res.DocumentType != "pdf" || !json.Valid(res.ExtractedData)):
			t.Errorf("%s: %+v", tc.name, res)
		case tc.code != 0 && jsonrpc.CodeOf(err) != tc.code:
			t.Errorf("%s: %v, want code %d", tc.name, err, tc.code)
		case tc.causes != nil && !hasCause(err, tc.causes):
			t.Errorf("%s: %v, want \"document could not be parsed: \" and one of %q", tc.name, err, tc.causes)
		}
		if took > p.timeout+5*time.Second {
			t.Errorf("%s: answered after %s, more than EXTRACT_TIMEOUT + 5s", tc.name, took)
		}
		if !p.alive() {
			t.Fatalf("%s: the agent (pid %d) died", tc.name, p.Pid())
		}
		if rss > maxAgentRSS {
			t.Errorf("%s: agent VmHWM %d MiB, over %d MiB", tc.name, rss>>20, maxAgentRSS>>20)
		}
	}
	// Twice as many large documents as workers at once: the agent holds at
	// most EXTRACT_WORKERS of them (admission before reading), the others
	// wait for a slot.
	p.resetPeak()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		key := []string{"field.csv", "escapes.csv", "dicts.pdf", "arrays.pdf"}[i%4]
		wg.Go(func() { _, _, errs[i] = p.extract(key) })
	}
	wg.Wait()
	rss := p.peakRSS(t)
	peak = max(peak, rss)
	t.Logf("8 large hostile documents at once: agent VmHWM %d MiB", rss>>20)
	for i, err := range errs {
		if c := jsonrpc.CodeOf(err); c != agentapi.CodeTooLarge && c != jsonrpc.CodeInvalidParams && !starved(err) {
			t.Errorf("document %d of 8: %v", i, err)
		}
	}
	if rss > maxAgentRSS || !p.alive() {
		t.Errorf("8 at once: agent VmHWM %d MiB, alive %v", rss>>20, p.alive())
	}
	st, err := p.workers()
	if err != nil || st.Busy != 0 || st.Total != 4 || st.KilledSinceStart < 4 {
		t.Fatalf("extract_workers after the corpus: %+v %v", st, err)
	}
	// The metrics count the same kills.
	resp, err := p.health.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if want := fmt.Sprintf("ca_a2a_extract_workers_killed_total %d\n", st.KilledSinceStart); resp.StatusCode != 200 || !strings.Contains(string(text), want) {
		t.Errorf("/metrics: %d, want %q in:\n%s", resp.StatusCode, want, text)
	}
	t.Logf("agent pid %d alive throughout; highest VmHWM %d MiB; workers %+v", p.Pid(), peak>>20, st)
}

// TestValidPDFWhileHostileParsesRun: three parses that never end hold
// three of the four workers; a valid PDF sent meanwhile is extracted
// at once, before any of the three is killed.
func TestValidPDFWhileHostileParsesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("holds three workers for EXTRACT_TIMEOUT")
	}
	// A large memory limit keeps the loops (which allocate as they go)
	// running until the clock ends them, so that none ends early. Their
	// time limit is the 15 s within which the valid PDF must be answered:
	// answered before any of them ended, it was answered within 15 s.
	const within = 15 * time.Second
	p := startExtractor(t, map[string]string{"EXTRACT_TIMEOUT": within.String(), "EXTRACT_WORKERS": "4", "EXTRACT_MEMORY_LIMIT": "1GiB"})
	hostile := map[string][]byte{"prev-1.pdf": pdftest.PrevCycle(1), "prev-2.pdf": pdftest.PrevCycle(2), "objstm-extends.pdf": pdftest.ObjectStreamExtendsItself()}
	for k, v := range hostile {
		p.put(t, k, v)
	}
	p.put(t, "valid.pdf", samples.Invoice())
	var mu sync.Mutex
	var ended []string
	var wg sync.WaitGroup
	for key := range hostile {
		wg.Go(func() {
			_, took, err := p.extract(key)
			mu.Lock()
			ended = append(ended, fmt.Sprintf("%s after %s: %v", key, took.Round(time.Millisecond), errOrOK(err)))
			mu.Unlock()
		})
	}
	// All three running: the pool says so (its report is cached 2 s).
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := p.workers()
		if err == nil && st.Busy == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the three hostile parses are not all running: %+v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	res, took, err := p.extract("valid.pdf")
	mu.Lock()
	endedBefore := len(ended)
	mu.Unlock()
	t.Logf("valid PDF extracted in %s while %d of 3 hostile parses had ended", took.Round(time.Millisecond), endedBefore)
	// That no hostile parse had ended says it did not wait for their
	// workers, and that it took less than their time limit.
	if err != nil || res.DocumentType != "pdf" {
		t.Errorf("valid PDF: %v after %s", err, took)
	}
	if endedBefore != 0 || took > within {
		t.Errorf("the valid PDF was answered after %s, when %d hostile parses had ended: it waited for a worker", took, endedBefore)
	}
	wg.Wait()
	for _, e := range ended {
		t.Log(e)
		// Or, when this machine starved the three loops of CPU,
		// overloaded (transient): as clean and as bounded.
		if !strings.Contains(e, "-32602 document could not be parsed") && !strings.Contains(e, "-32002 extractor overloaded") {
			t.Errorf("hostile parse: %s", e)
		}
	}
	if !p.alive() {
		t.Fatal("the agent died")
	}
	if rss := p.peakRSS(t); rss > maxAgentRSS {
		t.Errorf("agent VmHWM %d MiB", rss>>20)
	}
}

// starved reports whether err is the extractor's answer for a worker that
// reached its time limit without getting the CPU it needed.
func starved(err error) bool {
	return jsonrpc.CodeOf(err) == agentapi.CodeUnavailable && strings.Contains(err.Error(), "extractor overloaded")
}

func hasCause(err error, causes []string) bool {
	var rpc *jsonrpc.Error
	if !errors.As(err, &rpc) {
		return false
	}
	for _, c := range causes {
		if rpc.Message == "document could not be parsed: "+c {
			return true
		}
	}
	return false
}

func errOrOK(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
