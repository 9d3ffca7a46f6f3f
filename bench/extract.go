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
	timed := func(f func([]byte) error, d []byte) time.Duration {
		start := time.Now()
		if err := f(d); err != nil {
			tb.Fatalf("extraction of a valid PDF failed: %v", err)
		}
		return time.Since(start)
	}
	// Warm both paths (page cache, the binary's pages), then alternate.
	for range 2 {
		timed(inProcess, doc)
		timed(sandboxed, doc)
	}
	reps := max(o.ExtractReps, 1)
	var in, sb, fixed []time.Duration
	for range reps {
		if ctx.Err() != nil {
			break
		}
		in = append(in, timed(inProcess, doc))
		sb = append(sb, timed(sandboxed, doc))
		fixed = append(fixed, timed(sandboxed, tiny))
	}
	mIn, mSb, mFixed := median(in), median(sb), median(fixed)
	extra := mSb - mIn
	row := Row{ID: "9", Title: fmt.Sprintf("extraction of a valid %d KiB PDF: sandboxed worker vs in process", len(doc)>>10),
		Of:     "ms per document parsed in a worker process (start, limits, Landlock, pipe in, parse, JSON out, reap) ÷ ms for the same parse in process",
		Target: "<= 1.5, or < 20 ms more per document",
		Ratio:  ratio(msf(mSb), msf(mIn)),
		Detail: fmt.Sprintf("in process %.1f ms, in a worker %.1f ms (+%.1f ms); a one-page PDF in a worker %.1f ms (the fixed cost); median of %d",
			msf(mIn), msf(mSb), msf(extra), msf(mFixed), len(in)),
		Values: map[string]float64{"in_process_ms": msf(mIn), "sandboxed_ms": msf(mSb), "extra_ms": msf(extra),
			"fixed_cost_ms": msf(mFixed), "document_bytes": float64(len(doc)), "reps": float64(len(in))},
	}
	if row.Ratio != nil {
		row.Met = met(*row.Ratio <= 1.5 || extra < 20*time.Millisecond)
	}
	return []Row{row}
}
