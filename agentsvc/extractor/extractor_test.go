package extractor_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/documents"
	"github.com/ca-a2a/ca-a2a/agentsvc/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/extractor/pdftest"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

func method(t *testing.T, e *extractor.Extractor, name string) func(params string) (any, error) {
	t.Helper()
	for _, m := range e.Methods() {
		if m.Name == name {
			return func(params string) (any, error) { return m.Handler(t.Context(), json.RawMessage(params)) }
		}
	}
	t.Fatalf("no method %s", name)
	return nil
}

func extract(t *testing.T, e *extractor.Extractor, key string) (*extractor.Result, error) {
	t.Helper()
	params, _ := json.Marshal(extractor.ExtractParams{S3Key: key})
	out, err := method(t, e, "extract_document")(string(params))
	if err != nil {
		return nil, err
	}
	return out.(*extractor.Result), nil
}

var (
	invoice = pdftest.Build("Invoice 2026-001\nCustomer: ACME", "Total: 7500.00 EUR")
	// truncated keeps the header but loses the xref table and trailer.
	truncated = invoice[:len(invoice)/2]
)

// docStore writes files into a directory store, with a symbolic link that
// leaves the root.
func docStore(t *testing.T, files map[string][]byte) (documents.Store, string) {
	t.Helper()
	base := t.TempDir()
	store, err := documents.Open(t.Context(), "file://"+filepath.Join(base, "docs"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range files {
		if err := documents.Put(t.Context(), store, k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "secret.csv"), []byte("user,password\nroot,hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "secret.csv"), filepath.Join(base, "docs", "link.csv")); err != nil {
		t.Fatal(err)
	}
	return store, base
}

func TestExtractDocument(t *testing.T) {
	files := map[string][]byte{
		"incoming/invoice.pdf": invoice,
		"UPPER.PDF":            pdftest.Build("upper-case extension"),
		"tx.csv":               []byte("date;label;amount;currency\n2026-01-02;coffee;3,50;EUR\n2026-01-03;train;42,00;EUR\n"),
		"tab.CSV":              []byte("a\tb\n1\t2\n"),
		"corrupt.pdf":          []byte("%PDF-1.4\nthis is not a pdf body at all\n"),
		"truncated.pdf":        truncated,
		"fake.pdf":             []byte("hello, I am a text file"),
		"pdf-in-csv.csv":       []byte("a,b\x00\x01\n"),
		"empty.csv":            {},
		"blank.pdf":            []byte("  \n\t"),
		"latin1.csv":           []byte("nom,ville\nJos\xe9,S\xe8te\n"),
		"notes.txt":            []byte("hello"),
		"noext":                []byte("a,b\n1,2\n"),
		"big.csv":              []byte(strings.Repeat("a,b\n", 1025)),
		"bad-quotes.csv":       []byte("a,b\n\"x,y\n"),
	}
	store, base := docStore(t, files)
	e := extractor.New(store, extractor.Options{MaxBytes: 4096})

	sum := sha256.Sum256(invoice)
	res, err := extract(t, e, "incoming/invoice.pdf")
	if err != nil {
		t.Fatal(err)
	}
	want := &extractor.Result{
		DocumentType: "pdf", FileName: "invoice.pdf", FileSize: int64(len(invoice)), SHA256: hex.EncodeToString(sum[:]),
		ExtractedData: &extractor.PDFData{PageCount: 2, Pages: []extractor.Page{
			{Number: 1, Text: "Invoice 2026-001\nCustomer: ACME"}, {Number: 2, Text: "Total: 7500.00 EUR"}}},
	}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("invoice:\n got %+v %+v\nwant %+v %+v", res, res.ExtractedData, want, want.ExtractedData)
	}
	res, err = extract(t, e, "tx.csv")
	if err != nil {
		t.Fatal(err)
	}
	wantCSV := &extractor.CSVData{Delimiter: ";", Headers: []string{"date", "label", "amount", "currency"},
		Rows: [][]string{{"2026-01-02", "coffee", "3,50", "EUR"}, {"2026-01-03", "train", "42,00", "EUR"}}, RowCount: 2, ColumnCount: 4}
	if res.DocumentType != "csv" || !reflect.DeepEqual(res.ExtractedData, wantCSV) {
		t.Fatalf("csv: %+v %+v", res, res.ExtractedData)
	}
	if res, err := extract(t, e, "tab.CSV"); err != nil || res.ExtractedData.(*extractor.CSVData).Delimiter != "\t" {
		t.Fatalf("tab.CSV: %v", err)
	}
	if res, err := extract(t, e, "UPPER.PDF"); err != nil || res.DocumentType != "pdf" {
		t.Fatalf("UPPER.PDF: %v", err)
	}

	failures := []struct {
		key     string
		code    int
		message string
	}{
		{"corrupt.pdf", jsonrpc.CodeInvalidParams, "corrupt or unreadable PDF"},
		{"truncated.pdf", jsonrpc.CodeInvalidParams, "corrupt or unreadable PDF"},
		{"fake.pdf", jsonrpc.CodeInvalidParams, "unsupported document type"},
		{"pdf-in-csv.csv", jsonrpc.CodeInvalidParams, "unsupported document type"},
		{"empty.csv", jsonrpc.CodeInvalidParams, "empty document"},
		{"blank.pdf", jsonrpc.CodeInvalidParams, "empty document"},
		{"latin1.csv", jsonrpc.CodeInvalidParams, "not valid UTF-8"},
		{"notes.txt", jsonrpc.CodeInvalidParams, "unsupported document type"},
		{"noext", jsonrpc.CodeInvalidParams, "unsupported document type"},
		{"big.csv", jsonrpc.CodeInvalidParams, "larger than the 4096-byte limit"},
		{"bad-quotes.csv", jsonrpc.CodeInvalidParams, "malformed CSV"},
		{"missing.pdf", jsonrpc.CodeNotFound, "document not found"},
		{"link.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"../secret.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"incoming/../../secret.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"/etc/passwd", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{filepath.Join(base, "secret.csv"), jsonrpc.CodeInvalidParams, "not a valid object key"},
		{`..\secret.csv`, jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"a\x00.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"./tx.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"", jsonrpc.CodeInvalidParams, "not a valid object key"},
	}
	for _, tc := range failures {
		res, err := extract(t, e, tc.key)
		if jsonrpc.CodeOf(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%q: %+v, %v; want code %d with %q", tc.key, res, err, tc.code, tc.message)
			continue
		}
		if strings.Contains(err.Error(), base) || strings.Contains(err.Error(), "/tmp") {
			t.Errorf("%q: error leaks a path: %v", tc.key, err)
		}
	}

	badParams := []string{`{"s3_key":"tx.csv","path":"/etc"}`, `{"s3_key":7}`, `[]`, `{}`}
	for _, p := range badParams {
		if _, err := method(t, e, "extract_document")(p); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("params %s: %v", p, err)
		}
	}
}

// stubStore answers every Get with err and counts the calls.
type stubStore struct {
	documents.Store
	err  error
	gets atomic.Int32
}

func (s *stubStore) Get(context.Context, string, int64) (*documents.Object, error) {
	s.gets.Add(1)
	return nil, s.err
}

func TestStoreErrors(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{documents.ErrNotFound, jsonrpc.CodeNotFound},
		{documents.ErrInvalidKey, jsonrpc.CodeInvalidParams},
		{documents.ErrTooLarge, jsonrpc.CodeInvalidParams},
		{documents.ErrUnavailable, jsonrpc.CodeUnavailable},
		{context.DeadlineExceeded, jsonrpc.CodeUnavailable},
	}
	for _, tc := range tests {
		store := &stubStore{err: tc.err}
		_, err := extract(t, extractor.New(store, extractor.Options{}), "a.csv")
		if jsonrpc.CodeOf(err) != tc.code {
			t.Errorf("store error %v: got %v, want code %d", tc.err, err, tc.code)
		}
	}
	// Unsupported types and bad keys are refused before the store is asked.
	store := &stubStore{err: documents.ErrUnavailable}
	e := extractor.New(store, extractor.Options{})
	for _, key := range []string{"a.docx", "a", "../a.csv", "/a.pdf"} {
		if _, err := extract(t, e, key); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("%q: %v", key, err)
		}
	}
	if n := store.gets.Load(); n != 0 {
		t.Errorf("store read %d times for refused keys", n)
	}
}

func TestListSupportedFormats(t *testing.T) {
	e := extractor.New(&stubStore{}, extractor.Options{})
	out, err := method(t, e, "list_supported_formats")("")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	want := `{"formats":[{"type":"pdf","extensions":[".pdf"],"mime_type":"application/pdf"},{"type":"csv","extensions":[".csv"],"mime_type":"text/csv"}],"max_bytes":20971520}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if _, err := method(t, e, "list_supported_formats")(`{"x":1}`); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
		t.Fatalf("unknown field: %v", err)
	}
}

// TestResultJSON pins the wire names the orchestrator and validator read.
func TestResultJSON(t *testing.T) {
	res, err := extractor.Extract(t.Context(), "d/x.csv", []byte("a,b\n1,2\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	want := `{"document_type":"csv","file_name":"x.csv","file_size":8,"sha256":"` + hexSum("a,b\n1,2\n") +
		`","extracted_data":{"headers":["a","b"],"rows":[["1","2"]],"row_count":1,"column_count":2,"delimiter":","}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	pdf, _ := extractor.ExtractPDF(pdftest.Build("x"))
	b, _ = json.Marshal(pdf)
	if string(b) != `{"pages":[{"number":1,"text":"x"}],"page_count":1}` {
		t.Fatalf("pdf json %s", b)
	}
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
