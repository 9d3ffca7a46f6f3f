package extractor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor/pdftest"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/documents"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// The extractor parses PDFs in goroutines: none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

func extract(t *testing.T, e *extractor.Extractor, key string) (*agentapi.ExtractResult[any], error) {
	t.Helper()
	params, _ := json.Marshal(agentapi.ExtractParams{S3Key: key})
	out, err := method(t, e, "extract_document")(string(params))
	if err != nil {
		return nil, err
	}
	return out.(*agentapi.ExtractResult[any]), nil
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
	want := &agentapi.ExtractResult[any]{
		DocumentType: "pdf", FileName: "invoice.pdf", FileSize: int64(len(invoice)), SHA256: hex.EncodeToString(sum[:]),
		ExtractedData: &agentapi.PDFData{PageCount: 2, Pages: []agentapi.Page{
			{Number: 1, Text: "Invoice 2026-001\nCustomer: ACME"}, {Number: 2, Text: "Total: 7500.00 EUR"}}},
	}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("invoice:\n got %+v %+v\nwant %+v %+v", res, res.ExtractedData, want, want.ExtractedData)
	}
	res, err = extract(t, e, "tx.csv")
	if err != nil {
		t.Fatal(err)
	}
	wantCSV := &agentapi.CSVData{Delimiter: ";", Headers: []string{"date", "label", "amount", "currency"},
		Rows: [][]string{{"2026-01-02", "coffee", "3,50", "EUR"}, {"2026-01-03", "train", "42,00", "EUR"}}, RowCount: 2, ColumnCount: 4}
	if res.DocumentType != "csv" || !reflect.DeepEqual(res.ExtractedData, wantCSV) {
		t.Fatalf("csv: %+v %+v", res, res.ExtractedData)
	}
	if res, err := extract(t, e, "tab.CSV"); err != nil || res.ExtractedData.(*agentapi.CSVData).Delimiter != "\t" {
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
		{"missing.pdf", agentapi.CodeNotFound, "document not found"},
		{"link.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"../secret.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"incoming/../../secret.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"/etc/passwd", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{filepath.Join(base, "secret.csv"), jsonrpc.CodeInvalidParams, "not a valid object key"},
		{`..\secret.csv`, jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"a\x00.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"./tx.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"%2e%2e/secret.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
		{"incoming%2f%2e%2e%2f%2e%2e%2fsecret.csv", jsonrpc.CodeInvalidParams, "not a valid object key"},
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
	const cause = "dial tcp 10.0.0.1:443: i/o timeout /srv/docs"
	tests := []struct {
		err    error
		code   int
		logged bool // the cause reaches the log
	}{
		{documents.ErrNotFound, agentapi.CodeNotFound, false},
		{documents.ErrInvalidKey, jsonrpc.CodeInvalidParams, false},
		{documents.ErrTooLarge, jsonrpc.CodeInvalidParams, false},
		{fmt.Errorf("%w: %s", documents.ErrUnavailable, cause), agentapi.CodeUnavailable, true},
		{fmt.Errorf("%w: %s", context.DeadlineExceeded, cause), agentapi.CodeUnavailable, true},
	}
	for _, tc := range tests {
		var logs bytes.Buffer
		store := &stubStore{err: tc.err}
		e := extractor.New(store, extractor.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		_, err := extract(t, e, "a.csv")
		if jsonrpc.CodeOf(err) != tc.code {
			t.Errorf("store error %v: got %v, want code %d", tc.err, err, tc.code)
		}
		if strings.Contains(err.Error(), cause) {
			t.Errorf("store error %v: the cause reached the caller: %v", tc.err, err)
		}
		if got := strings.Contains(logs.String(), cause); got != tc.logged {
			t.Errorf("store error %v: cause logged %v, want %v: %s", tc.err, got, tc.logged, logs.String())
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
	want := `{"formats":[{"type":"pdf","extensions":[".pdf"],"mime_type":"application/pdf","max_bytes":20971520},` +
		`{"type":"csv","extensions":[".csv"],"mime_type":"text/csv","max_bytes":20971520}]}`
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

// TestPDFWorkers: a PDF parse that outlives its request keeps its worker
// slot; with every slot taken PDFs are refused as unavailable (-32002),
// CSVs still work, and a slot comes back when its parse ends.
func TestPDFWorkers(t *testing.T) {
	release := make(chan struct{})
	var running atomic.Int32
	defer extractor.SetPDFParser(func(ctx context.Context, key string, data []byte) (*agentapi.ExtractResult[any], error) {
		running.Add(1)
		defer running.Add(-1)
		if bytes.Contains(data, []byte("stuck")) {
			<-release // a parse that ignores ctx, as a looping library would
		}
		return extractor.Extract(ctx, key, data)
	})()
	store, _ := docStore(t, map[string][]byte{
		"stuck.pdf": pdftest.Build("stuck"),
		"ok.pdf":    pdftest.Build("fine"),
		"ok.csv":    []byte("a,b\n1,2\n"),
	})
	var logs bytes.Buffer
	e := extractor.New(store, extractor.Options{PDFWorkers: 1, Timeout: 100 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})

	steps := []struct {
		key     string
		code    int // 0: success
		message string
	}{
		{"ok.pdf", 0, ""},
		{"stuck.pdf", agentapi.CodeUnavailable, "did not finish in time"},
		{"ok.pdf", agentapi.CodeUnavailable, "extractor busy"}, // the stuck parse holds the only slot
		{"ok.csv", 0, ""},
	}
	for _, s := range steps {
		res, err := extract(t, e, s.key)
		if s.code == 0 {
			if err != nil || res == nil {
				t.Fatalf("%s: %v", s.key, err)
			}
			continue
		}
		if jsonrpc.CodeOf(err) != s.code || !strings.Contains(err.Error(), s.message) {
			t.Fatalf("%s: %v, want %d %q", s.key, err, s.code, s.message)
		}
	}
	if !strings.Contains(logs.String(), "still running at the deadline") || !strings.Contains(logs.String(), "stuck.pdf") {
		t.Errorf("the stuck parse was not logged: %s", logs.String())
	}

	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := extract(t, e, "ok.pdf")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot never came back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := running.Load(); n != 0 {
		t.Fatalf("%d parses still running", n)
	}
}
