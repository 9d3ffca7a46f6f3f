//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"testing"
)

func init() {
	Register("bench-csv", csvSummary)
	Register("bench-discard", func([]byte, io.Writer) error { return nil })
}

// csvSummary stands for an extraction: it parses every record of a CSV and
// writes a small JSON result.
func csvSummary(doc []byte, out io.Writer) error {
	r := csv.NewReader(bytes.NewReader(doc))
	rows, fields := 0, 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		rows++
		fields += len(rec)
	}
	sum := sha256.Sum256(doc)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	return enc.Encode(map[string]any{"rows": rows, "fields": fields, "sha256": hex.EncodeToString(sum[:])})
}

// benchCSV is a CSV of about 1 MiB.
func benchCSV() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "%d,invoice-%08d,2024-01-%02d,\"ACME, Inc.\",%d.%02d\n", i, i, i%28+1, i*7, i%100)
	}
	return b.Bytes()
}

// BenchmarkSandbox compares a parse of a 1 MiB document in process with
// the same parse in a worker, and isolates the worker's fixed cost (start,
// limits, confinement, exit, reap) and the cost of piping 1 MiB.
func BenchmarkSandbox(b *testing.B) {
	doc := benchCSV()
	cfg := Config{Workers: 1, MaxDocumentBytes: 2 << 20}
	p, err := NewPool(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("in-process/csv-1MiB", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			w := newLimitWriter(p.Config().MaxOutputBytes)
			if err := csvSummary(doc, w); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name, kind string
		doc        []byte
	}{
		{"worker/csv-1MiB", "bench-csv", doc},
		{"worker/fixed-cost", "bench-discard", nil},
		{"worker/pipe-1MiB", "bench-discard", doc},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.doc)))
			for b.Loop() {
				if _, err := p.Run(ctx, bc.kind, bc.doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
