package extractor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor/pdftest"
	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// TestWorkerOutcomes: every way a worker can end becomes one answer, in one
// class: permanent (-32602 with the cause, -32012), transient (-32002) or
// internal (-32603). The worker's standard error reaches the log, never
// the caller.
func TestWorkerOutcomes(t *testing.T) {
	// A field of "<", control characters, quotes and backslashes:
	// JSON-escapes about fourfold (sixfold with HTML escaping).
	escapes := "a\n" + strings.Repeat(`"`+strings.Repeat("<\x01\"\"\\", 256)+`"`+"\n", 2048)
	store, _ := docStore(t, map[string][]byte{
		"loop.pdf":   pdftest.PrevCycle(1),
		"oom.pdf":    pdftest.XrefEntryAt(1<<40 - 8),
		"escape.csv": []byte(escapes),
		"ok.csv":     []byte("a,b\n1,2\n"),
	})
	tests := []struct {
		name     string
		key      string
		cfg      sandbox.Config
		cpuShare float64       // extractor.MinCPUShare when 0
		deadline time.Duration // of the request; 0: hang
		code     int
		message  string
		killed   uint64
		logged   string
	}{
		// The looping parse spins: on a loaded machine it may still get
		// less than half a CPU, so the share it must reach is lowered
		// to what any run reaches.
		{name: "parse past EXTRACT_TIMEOUT", key: "loop.pdf", cfg: sandbox.Config{Timeout: 2 * time.Second}, cpuShare: 0.01,
			code: jsonrpc.CodeInvalidParams, message: "document could not be parsed: time limit", killed: 1, logged: `"outcome":"time limit"`},
		// A share no run reaches plays a worker starved of CPU.
		{name: "parse past EXTRACT_TIMEOUT without the CPU", key: "loop.pdf", cfg: sandbox.Config{Timeout: 2 * time.Second}, cpuShare: 2,
			code: agentapi.CodeUnavailable, message: "extractor overloaded", killed: 1, logged: `"msg":"extractor: parse starved of CPU before its time limit"`},
		{name: "request deadline before EXTRACT_TIMEOUT", key: "loop.pdf", deadline: 2 * time.Second,
			code: agentapi.CodeUnavailable, message: "did not finish before the request's deadline", killed: 1,
			logged: `"msg":"extractor: parse cut short by the request's deadline"`},
		{name: "allocation past the memory limit", key: "oom.pdf",
			code: jsonrpc.CodeInvalidParams, message: "document could not be parsed: memory limit", killed: 1, logged: `"stderr":`},
		{name: "data over the hop limit", key: "escape.csv",
			code: agentapi.CodeTooLarge, message: "over the 1 MiB hop limit", logged: `"outcome":"output too large"`},
		{name: "worker cannot start", key: "ok.csv", cfg: sandbox.Config{Executable: "/nonexistent/agent"},
			code: jsonrpc.CodeInternalError, message: "internal error", logged: "worker could not be set up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncbuf.Buffer{}
			cfg := tc.cfg
			cfg.Workers = 1
			p := pool(t, cfg)
			e := extractor.New(store, p, extractor.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			if tc.cpuShare != 0 {
				extractor.SetMinCPUShare(e, tc.cpuShare)
			}
			d := tc.deadline
			if d == 0 {
				d = hang
			}
			ctx, cancel := context.WithTimeout(t.Context(), d)
			defer cancel()
			_, err := extractCtx(ctx, t, e, tc.key)
			if jsonrpc.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("%v; want %d with %q\n%s", err, tc.code, tc.message, logs)
			}
			if strings.Contains(err.Error(), "goroutine") || strings.Contains(err.Error(), "fatal error") {
				t.Fatalf("the worker's stderr reached the caller: %v", err)
			}
			if !strings.Contains(logs.String(), tc.logged) {
				t.Fatalf("log lacks %q:\n%s", tc.logged, logs)
			}
			if st := e.Stats(); st.Busy != 0 || st.KilledSinceStart != tc.killed {
				t.Fatalf("stats %+v, want no slot busy and %d killed", st, tc.killed)
			}
		})
	}
}

// TestBusy: with every worker held by a parse that never ends, a request
// waits within its deadline and gets -32002 "extractor busy"; the slot is
// free again the moment the parse is killed.
func TestBusy(t *testing.T) {
	store, _ := docStore(t, map[string][]byte{"loop.pdf": pdftest.PrevCycle(2), "ok.pdf": invoice})
	e := extractor.New(store, pool(t, sandbox.Config{Workers: 1, Timeout: 3 * time.Second}), extractor.Options{})
	// The loop must be blamed on the document even if this machine gives
	// it less than half a CPU (TestWorkerOutcomes covers the share).
	extractor.SetMinCPUShare(e, 0.01)
	var wg sync.WaitGroup
	var loopErr error
	wg.Go(func() { _, loopErr = extract(t, e, "loop.pdf") })
	deadline := time.Now().Add(hang)
	for e.Stats().Busy == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err := extractCtx(ctx, t, e, "ok.pdf")
	cancel()
	if jsonrpc.CodeOf(err) != agentapi.CodeUnavailable || !strings.Contains(err.Error(), "extractor busy") {
		t.Fatalf("with the only worker held: %v", err)
	}
	wg.Wait()
	if jsonrpc.CodeOf(loopErr) != jsonrpc.CodeInvalidParams || !strings.Contains(loopErr.Error(), "time limit") {
		t.Fatalf("looping PDF: %v", loopErr)
	}
	if _, err := extract(t, e, "ok.pdf"); err != nil {
		t.Fatalf("after the loop was killed: %v", err)
	}
	if st := e.Stats(); st.Busy != 0 || st.Total != 1 || st.KilledSinceStart != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOutputBound: extraction stops as soon as the encoded data would pass
// the limit, whatever the shape (many rows, one huge field, one huge page),
// and data at the limit passes.
func TestOutputBound(t *testing.T) {
	const limit = 64 << 10
	long := strings.Repeat("x", 1<<20)
	tests := []struct {
		name string
		kind string
		doc  string
		ok   bool
	}{
		{"rows under the limit", "csv", "a\n" + strings.Repeat("yyyyyyyy\n", 4000), true},
		{"rows over the limit", "csv", "a\n" + strings.Repeat("yyyyyyyy\n", 8000), false},
		{"one huge field", "csv", "a\n" + long + "\n", false},
		{"escapes past the limit", "csv", "a\n" + strings.Repeat("\x01", 20<<10) + "\n", false},
		{"one huge header", "csv", long + "\n1\n", false},
		{"one huge page", "pdf", string(pdftest.Build(strings.Repeat("z", 100<<10))), false},
	}
	for _, tc := range tests {
		out, err := extractor.Parse(tc.kind, []byte(tc.doc), limit)
		if tc.ok {
			if err != nil || len(out) > limit || !json.Valid(out) {
				t.Errorf("%s: %d bytes, %v", tc.name, len(out), err)
			}
			continue
		}
		if !errors.Is(err, sandbox.ErrOutputTooLarge) {
			t.Errorf("%s: %v, want the output refused", tc.name, err)
		}
	}
	// The writer is never asked for much past the limit: one chunk.
	w := &countingWriter{max: limit}
	if err := extractor.WriteCSV([]byte("a\n"+strings.Repeat(strings.Repeat("y", 1000)+"\n", 1000)), w); err != sandbox.ErrOutputTooLarge || w.asked > limit+64<<10 {
		t.Fatalf("asked to write %d bytes past a %d limit: %v", w.asked, limit, err)
	}
	// A record that cannot fit the data limit is refused before it is
	// read, quoted newlines included; nothing is written.
	for name, doc := range map[string]string{
		"one long line":            "a\n" + strings.Repeat("x", agentapi.MaxExtractedDataBytes+1) + "\n1\n",
		"quoted lines, one record": "a\n\"" + strings.Repeat("x\n", agentapi.MaxExtractedDataBytes/2+1) + "\"\n",
	} {
		w := &countingWriter{max: 1 << 30}
		if err := extractor.WriteCSV([]byte(doc), w); !errors.Is(err, sandbox.ErrOutputTooLarge) || w.asked != 0 {
			t.Errorf("%s: %v after %d bytes written", name, err, w.asked)
		}
	}
	w = &countingWriter{max: 1 << 30}
	if err := extractor.WriteCSV([]byte("a\n"+strings.Repeat(strings.Repeat("x", 99)+"\n", 20_000)), w); err != nil {
		t.Errorf("2 MB of short records: %v", err)
	}
}

// countingWriter refuses writes past max and counts what it was asked.
type countingWriter struct {
	n, max, asked int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.asked += len(p)
	if c.n+len(p) > c.max {
		return 0, sandbox.ErrOutputTooLarge
	}
	c.n += len(p)
	return len(p), nil
}

// FuzzWorker feeds the worker's entry point, in real worker processes
// through the pool: a worker may die, but every outcome is one of the
// sandbox's, and the result, when there is one, is a JSON object of the
// validator's shape. The fuzzing process plays the agent: it must live
// through every input. `go test` runs the seeds (valid documents and the
// hostile corpus); `go test -fuzz FuzzWorker` searches further.
func FuzzWorker(f *testing.F) {
	for _, seed := range []struct {
		kind string
		doc  []byte
	}{
		{"pdf", invoice},
		{"pdf", pdftest.Build()},
		{"pdf", pdftest.PrevCycle(1)},
		{"pdf", pdftest.XrefEntryAt(1<<40 - 8)},
		{"pdf", pdftest.XrefStreamSize(4_000_000_000)},
		{"pdf", pdftest.NestedArrays(100_000)},
		{"pdf", pdftest.ObjectStreamInItself()},
		{"pdf", pdftest.FlateBomb(256 << 20)},
		{"pdf", []byte("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF")},
		{"csv", []byte("a,b\n1,2\n")},
		{"csv", []byte("a;b\n\"x\"\"y\";\x01\n")},
		{"csv", []byte("\xef\xbb\xbf")},
	} {
		f.Add(seed.kind, seed.doc)
	}
	p, err := sandbox.NewPool(sandbox.Config{Workers: 2, Timeout: 5 * time.Second, MaxDocumentBytes: 1 << 20,
		MaxOutputBytes: agentapi.MaxExtractedDataBytes})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, kind string, doc []byte) {
		if kind != "pdf" && kind != "csv" || len(doc) > 1<<20 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		out, err := p.Run(ctx, kind, doc)
		if err != nil {
			var re *sandbox.RunError
			if !errors.As(err, &re) || re.Kind == sandbox.ErrSetup {
				t.Fatalf("outcome %v is not a worker's", err)
			}
			return
		}
		if !bytes.HasPrefix(out, []byte("{")) || !json.Valid(out) {
			t.Fatalf("result is not a JSON object: %.200q", out)
		}
		var v any = &agentapi.CSVData{}
		if kind == "pdf" {
			v = &agentapi.PDFData{}
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("result %.200q does not decode: %v", out, err)
		}
	})
}

// TestCPUShareIsAgainstTheFairShare: with more workers than CPUs, a worker
// that got its fair share (CPUs / workers) is not "starved": as many
// looping documents as workers, uploaded at once, are still blamed.
func TestCPUShareIsAgainstTheFairShare(t *testing.T) {
	cpus := runtime.GOMAXPROCS(0)
	for _, tc := range []struct {
		workers int
		want    float64
	}{
		{1, extractor.MinCPUShare},
		{cpus, extractor.MinCPUShare},
		{4 * cpus, extractor.MinCPUShare / 4},
	} {
		e := extractor.New(nil, pool(t, sandbox.Config{Workers: tc.workers}), extractor.Options{})
		if got := extractor.CPUShareThreshold(e); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%d workers on %d CPUs: threshold %v of the wall clock, want %v", tc.workers, cpus, got, tc.want)
		}
	}
}
