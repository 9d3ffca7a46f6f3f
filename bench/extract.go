package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor/pdftest"
	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"golang.org/x/sys/unix"
)

// ExtractPDF is a valid PDF of about size bytes: pages of short invoice
// lines, whose extracted data stays under the hop limit (about 3/4 of the
// file is text).
func ExtractPDF(size int) []byte {
	var pages []string
	n := 0
	for p := 0; n < size; p++ {
		var b strings.Builder
		for l := range 60 {
			fmt.Fprintf(&b, "Invoice %04d line %02d: 12.50 EUR\n", p, l)
		}
		pages = append(pages, b.String())
		n += b.Len() * 4 / 3
	}
	return pdftest.Build(pages...)
}

// extractRows measures row 9: the same parse of a ~1 MiB PDF in this
// process and in a sandboxed worker (the extractor's path), alternating,
// ExtractReps times each, medians compared. A one-page PDF through a
// worker shows the fixed cost of a worker.
func extractRows(ctx context.Context, tb testing.TB, o Options) []Row {
	doc := ExtractPDF(1 << 20)
	tiny := pdftest.Build("Invoice 2026-001")
	pool, err := sandbox.NewPool(sandbox.Config{Workers: 1, MaxOutputBytes: agentapi.MaxExtractedDataBytes})
	if err != nil {
		tb.Fatal(err)
	}
	inProcess := func(d []byte) error {
		_, err := extractor.Parse(agentapi.DocumentTypePDF, d, agentapi.MaxExtractedDataBytes)
		return err
	}
	sandboxed := func(d []byte) error {
		out, err := pool.Run(ctx, agentapi.DocumentTypePDF, d)
		if err == nil && !json.Valid(out) {
			err = fmt.Errorf("worker result is not JSON")
		}
		return err
	}
	// Wall time, and CPU time (user + system), which a busy machine
	// disturbs less: this process's for the in-process parse, the reaped
	// children's for a worker.
	timed := func(f func([]byte) error, d []byte, who int) (wall, cpu time.Duration) {
		before := cpuTime(tb, who)
		start := time.Now()
		if err := f(d); err != nil {
			tb.Fatalf("extraction of a valid PDF failed: %v", err)
		}
		return time.Since(start), cpuTime(tb, who) - before
	}
	// Warm both paths (page cache, the binary's pages), then alternate.
	for range 2 {
		timed(inProcess, doc, unix.RUSAGE_SELF)
		timed(sandboxed, doc, unix.RUSAGE_CHILDREN)
	}
	reps := max(o.ExtractReps, 1)
	var in, sb, fixed, inCPU, sbCPU []time.Duration
	for range reps {
		if ctx.Err() != nil {
			break
		}
		w, c := timed(inProcess, doc, unix.RUSAGE_SELF)
		in, inCPU = append(in, w), append(inCPU, c)
		w, c = timed(sandboxed, doc, unix.RUSAGE_CHILDREN)
		sb, sbCPU = append(sb, w), append(sbCPU, c)
		w, _ = timed(sandboxed, tiny, unix.RUSAGE_CHILDREN)
		fixed = append(fixed, w)
	}
	mIn, mSb, mFixed := median(in), median(sb), median(fixed)
	extra := mSb - mIn
	row := Row{ID: "9", Title: fmt.Sprintf("extraction of a valid %d KiB PDF: sandboxed worker vs in process", len(doc)>>10),
		Of:     "ms per document parsed in a worker process (start, limits, Landlock, pipe in, parse, JSON out, reap) ÷ ms for the same parse in process",
		Target: "<= 1.5, or < 20 ms more per document",
		Ratio:  ratio(msf(mSb), msf(mIn)),
		Detail: fmt.Sprintf("in process %.1f ms, in a worker %.1f ms (+%.1f ms); a one-page PDF in a worker %.1f ms (the fixed cost); CPU time in process %.1f ms, of the worker %.1f ms; median of %d",
			msf(mIn), msf(mSb), msf(extra), msf(mFixed), msf(median(inCPU)), msf(median(sbCPU)), len(in)),
		Values: map[string]float64{"in_process_ms": msf(mIn), "sandboxed_ms": msf(mSb), "extra_ms": msf(extra),
			"fixed_cost_ms": msf(mFixed), "in_process_cpu_ms": msf(median(inCPU)), "sandboxed_cpu_ms": msf(median(sbCPU)),
			"document_bytes": float64(len(doc)), "reps": float64(len(in))},
	}
	if row.Ratio != nil {
		row.Met = met(*row.Ratio <= 1.5 || extra < 20*time.Millisecond)
	}
	return []Row{row}
}

// cpuTime is the user and system CPU time of who (unix.RUSAGE_SELF, or
// unix.RUSAGE_CHILDREN: the children reaped so far).
func cpuTime(tb testing.TB, who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
