package extractor_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/documents"
	"github.com/ca-a2a/ca-a2a/agentsvc/extractor"
	"github.com/ca-a2a/ca-a2a/internal/samples"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

func call(t *testing.T, e *extractor.Extractor, key string) (*extractor.Result, error) {
	t.Helper()
	params, _ := json.Marshal(map[string]string{"s3_key": key})
	out, err := e.Methods()[0].Handler(t.Context(), params)
	if err != nil {
		return nil, err
	}
	return out.(*extractor.Result), nil
}

func TestExtractDocument(t *testing.T) {
	ctx := t.Context()
	store, err := documents.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"invoice.pdf":    samples.Invoice(),
		"tx.csv":         samples.TransactionsCSV(),
		"corrupt.pdf":    []byte("%PDF-1.4\nthis is not a pdf body at all\n"),
		"fake.pdf":       []byte("hello, I am a text file"),
		"empty.csv":      []byte("  \n"),
		"notes.txt":      []byte("hello"),
		"big.csv":        []byte(strings.Repeat("a,b\n", 100)),
		"bad-quotes.csv": []byte("a,b\n\"x,y\n"),
		"UPPER.PDF":      samples.PDF("upper case extension"),
		"dir/nested.csv": []byte("a\tb\n1\t2\n"),
	}
	for k, v := range files {
		if err := store.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	e := extractor.New(store, extractor.Options{MaxBytes: 300})
	big := extractor.New(store, extractor.Options{MaxBytes: 1 << 20})

	res, err := call(t, big, "invoice.pdf")
	if err != nil {
		t.Fatal(err)
	}
	pdf := res.ExtractedData.(*extractor.PDFData)
	if res.DocumentType != "pdf" || pdf.PageCount != 2 || !strings.Contains(pdf.Pages[1].Text, "Total: 7500.00 EUR") || len(res.SHA256) != 64 || res.FileName != "invoice.pdf" {
		t.Fatalf("pdf result %+v %+v", res, pdf)
	}
	res, err = call(t, big, "tx.csv")
	if err != nil {
		t.Fatal(err)
	}
	csv := res.ExtractedData.(*extractor.CSVData)
	if csv.Delimiter != ";" || csv.RowCount != 3 || csv.ColumnCount != 4 || csv.Headers[2] != "amount" {
		t.Fatalf("csv result %+v", csv)
	}
	if res, err := call(t, big, "dir/nested.csv"); err != nil || res.ExtractedData.(*extractor.CSVData).Delimiter != "\t" {
		t.Fatalf("tab CSV: %v", err)
	}
	if _, err := call(t, big, "UPPER.PDF"); err != nil {
		t.Fatalf("upper-case extension: %v", err)
	}

	for key, code := range map[string]int{
		"corrupt.pdf":    jsonrpc.CodeInvalidParams,
		"fake.pdf":       jsonrpc.CodeInvalidParams,
		"empty.csv":      jsonrpc.CodeInvalidParams,
		"notes.txt":      jsonrpc.CodeInvalidParams,
		"big.csv":        jsonrpc.CodeInvalidParams, // over the 300-byte limit
		"bad-quotes.csv": jsonrpc.CodeInvalidParams,
		"missing.pdf":    jsonrpc.CodeNotFound,
		"../etc/passwd":  jsonrpc.CodeInvalidParams,
		"/etc/passwd":    jsonrpc.CodeInvalidParams,
	} {
		_, err := call(t, e, key)
		if jsonrpc.CodeOf(err) != code {
			t.Errorf("%s: err %v, want code %d", key, err, code)
		}
		if err != nil && strings.Contains(err.Error(), "/tmp") {
			t.Errorf("%s: error leaks a path: %v", key, err)
		}
	}
	if _, err := e.Methods()[0].Handler(ctx, json.RawMessage(`{"s3_key":"a.pdf","path":"/etc"}`)); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestCSVDelimiters(t *testing.T) {
	tests := []struct {
		in    string
		delim string
		rows  int
	}{
		{"a,b,c\n1,2,3\n", ",", 1},
		{"a;b;c\n1;2;3\n4;5;6\n", ";", 2},
		{"a\tb\n1\t2\n", "\t", 1},
		{"\xef\xbb\xbfname,note\nx,\"1;2;3\"\n", ",", 1},
		{"a,b\n1,2,3\n", ",", 1},
	}
	for _, tc := range tests {
		d, err := extractor.ExtractCSV([]byte(tc.in))
		if err != nil || d.Delimiter != tc.delim || d.RowCount != tc.rows {
			t.Errorf("%q: %+v %v", tc.in, d, err)
		}
	}
	d, _ := extractor.ExtractCSV([]byte("\xef\xbb\xbfname,x\n"))
	if d.Headers[0] != "name" {
		t.Errorf("BOM not stripped: %q", d.Headers[0])
	}
}

func FuzzExtractCSV(f *testing.F) {
	f.Add(samples.TransactionsCSV())
	f.Add([]byte("a,\"b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := extractor.ExtractCSV(data)
		if err == nil && d.RowCount != len(d.Rows) {
			t.Fatal("row count mismatch")
		}
	})
}

func FuzzExtractPDF(f *testing.F) {
	f.Add(samples.Invoice())
	f.Add([]byte("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		_, _ = extractor.ExtractPDF(data) // must not panic
	})
}
