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
	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// The test binary is its own parse worker: the pool re-executes it, and
// sandbox.Main turns that process into the worker of the kinds the
// extractor registered.
func TestMain(m *testing.M) {
	sandbox.Main()
	goleak.VerifyTestMain(m)
}

// hang bounds every wait: a hang fails, nothing asserts a speed.
const hang = 60 * time.Second

func pool(t *testing.T, cfg sandbox.Config) *sandbox.Pool {
	t.Helper()
	if cfg.MaxOutputBytes == 0 {
		cfg.MaxOutputBytes = agentapi.MaxExtractedDataBytes
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = hang
	}
	p, err := sandbox.NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func method(t *testing.T, e *extractor.Extractor, name string) func(ctx context.Context, params string) (any, error) {
	t.Helper()
	for _, m := range e.Methods() {
		if m.Name == name {
			return func(ctx context.Context, params string) (any, error) { return m.Handler(ctx, json.RawMessage(params)) }
		}
	}
	t.Fatalf("no method %s", name)
	return nil
}

type result = agentapi.ExtractResult[json.RawMessage]

func extractCtx(ctx context.Context, t *testing.T, e *extractor.Extractor, key string) (*result, error) {
	t.Helper()
	params, _ := json.Marshal(agentapi.ExtractParams{S3Key: key})
	out, err := method(t, e, "extract_document")(ctx, string(params))
	if err != nil {
		return nil, err
	}
	return out.(*result), nil
}

func extract(t *testing.T, e *extractor.Extractor, key string) (*result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hang)
	defer cancel()
	return extractCtx(ctx, t, e, key)
}

// decode reads extracted_data into the type the validator reads, strictly.
func decode[T any](t *testing.T, raw json.RawMessage) *T {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("extracted_data %.200s: %v", raw, err)
	}
	return &v
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
	e := extractor.New(store, pool(t, sandbox.Config{Workers: 2, MaxDocumentBytes: 4096}), extractor.Options{})

	res, err := extract(t, e, "incoming/invoice.pdf")
	if err != nil {
		t.Fatal(err)
	}
	if res.DocumentType != "pdf" || res.FileName != "invoice.pdf" || res.FileSize != int64(len(invoice)) || res.SHA256 != hexSum(string(invoice)) {
		t.Fatalf("invoice: %+v", res)
	}
	wantPDF := &agentapi.PDFData{PageCount: 2, Pages: []agentapi.Page{
		{Number: 1, Text: "Invoice 2026-001\nCustomer: ACME"}, {Number: 2, Text: "Total: 7500.00 EUR"}}}
	if got := decode[agentapi.PDFData](t, res.ExtractedData); !reflect.DeepEqual(got, wantPDF) {
		t.Fatalf("invoice data %+v, want %+v", got, wantPDF)
	}
	res, err = extract(t, e, "tx.csv")
	if err != nil {
		t.Fatal(err)
	}
	wantCSV := &agentapi.CSVData{Delimiter: ";", Headers: []string{"date", "label", "amount", "currency"},
		Rows: [][]string{{"2026-01-02", "coffee", "3,50", "EUR"}, {"2026-01-03", "train", "42,00", "EUR"}}, RowCount: 2, ColumnCount: 4}
	if got := decode[agentapi.CSVData](t, res.ExtractedData); res.DocumentType != "csv" || !reflect.DeepEqual(got, wantCSV) {
		t.Fatalf("csv: %+v %+v", res, got)
	}
	if res, err := extract(t, e, "tab.CSV"); err != nil || decode[agentapi.CSVData](t, res.ExtractedData).Delimiter != "\t" {
		t.Fatalf("tab.CSV: %v", err)
	}
	if res, err := extract(t, e, "UPPER.PDF"); err != nil || res.DocumentType != "pdf" {
		t.Fatalf("UPPER.PDF: %v", err)
	}

	failures := []struct {
		key     string
		code    int
		message string
		read    bool // the document was read: the error carries its hash
	}{
		{"corrupt.pdf", jsonrpc.CodeInvalidParams, "document could not be parsed: corrupt or unreadable PDF", true},
		{"truncated.pdf", jsonrpc.CodeInvalidParams, "document could not be parsed: corrupt or unreadable PDF", true},
		{"fake.pdf", jsonrpc.CodeInvalidParams, "unsupported document type", true},
		{"pdf-in-csv.csv", jsonrpc.CodeInvalidParams, "unsupported document type", true},
		{"empty.csv", jsonrpc.CodeInvalidParams, "empty document", true},
		{"blank.pdf", jsonrpc.CodeInvalidParams, "empty document", true},
		{"latin1.csv", jsonrpc.CodeInvalidParams, "not valid UTF-8", true},
		{"bad-quotes.csv", jsonrpc.CodeInvalidParams, "malformed CSV", true},
		{"notes.txt", jsonrpc.CodeInvalidParams, "unsupported document type", false},
		{"noext", jsonrpc.CodeInvalidParams, "unsupported document type", false},
		{"big.csv", jsonrpc.CodeInvalidParams, "larger than the 4096-byte limit", false},
		{"missing.pdf", agentapi.CodeNotFound, "document not found", false},
		{"link.csv", jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{"../secret.csv", jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{"incoming/../../secret.csv", jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{"/etc/passwd", jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{filepath.Join(base, "secret.csv"), jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{`..\secret.csv`, jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{"a\x00.csv", jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{"./tx.csv", jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{"%2e%2e/secret.csv", jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{"incoming%2f%2e%2e%2f%2e%2e%2fsecret.csv", jsonrpc.CodeInvalidParams, "not a valid object key", false},
		{"", jsonrpc.CodeInvalidParams, "not a valid object key", false},
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
		data, _ := err.(*jsonrpc.Error).Data.(agentapi.ExtractFailure)
		if read := data.SHA256 != ""; read != tc.read || read && (data.SHA256 != hexSum(string(files[tc.key])) || data.FileName != filepath.Base(tc.key)) {
			t.Errorf("%q: error data %+v, want the document's hash: %v", tc.key, data, tc.read)
		}
	}

	badParams := []string{`{"s3_key":"tx.csv","path":"/etc"}`, `{"s3_key":7}`, `[]`, `{}`}
	for _, p := range badParams {
		if _, err := method(t, e, "extract_document")(t.Context(), p); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("params %s: %v", p, err)
		}
	}
	if st := e.Stats(); st.Busy != 0 || st.Total != 2 || st.KilledSinceStart != 0 {
		t.Errorf("stats after ordinary documents: %+v", st)
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
	p := pool(t, sandbox.Config{Workers: 1})
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
		e := extractor.New(store, p, extractor.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
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
	e := extractor.New(store, p, extractor.Options{})
	for _, key := range []string{"a.docx", "a", "../a.csv", "/a.pdf"} {
		if _, err := extract(t, e, key); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("%q: %v", key, err)
		}
	}
	if n := store.gets.Load(); n != 0 {
		t.Errorf("store read %d times for refused keys", n)
	}
	if st := p.Stats(); st.Busy != 0 {
		t.Errorf("slots held after store errors: %+v", st)
	}
}

func TestListSupportedFormats(t *testing.T) {
	e := extractor.New(&stubStore{}, pool(t, sandbox.Config{}), extractor.Options{})
	out, err := method(t, e, "list_supported_formats")(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	want := `{"formats":[{"type":"pdf","extensions":[".pdf"],"mime_type":"application/pdf","max_bytes":20971520},` +
		`{"type":"csv","extensions":[".csv"],"mime_type":"text/csv","max_bytes":20971520}]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if _, err := method(t, e, "list_supported_formats")(t.Context(), `{"x":1}`); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
		t.Fatalf("unknown field: %v", err)
	}
}

// TestResultJSON pins the wire bytes the orchestrator and the validator
// read, as the worker writes them and as the in-process Parse does.
func TestResultJSON(t *testing.T) {
	csvDoc := "a,b\n1,<&>\n"
	pdfDoc := pdftest.BuildInfo(map[string]string{"Title": "T <1>", "Author": "A"}, "x & y")
	store, _ := docStore(t, map[string][]byte{"d/x.csv": []byte(csvDoc), "d/x.pdf": pdfDoc})
	e := extractor.New(store, pool(t, sandbox.Config{Workers: 1}), extractor.Options{})
	res, err := extract(t, e, "d/x.csv")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := jsonrpc.Marshal(res)
	want := `{"document_type":"csv","file_name":"x.csv","file_size":10,"sha256":"` + hexSum(csvDoc) +
		`","extracted_data":{"headers":["a","b"],"rows":[["1","<&>"]],"row_count":1,"column_count":2,"delimiter":","}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	res, err = extract(t, e, "d/x.pdf")
	if err != nil {
		t.Fatal(err)
	}
	wantPDF := `{"pages":[{"number":1,"text":"x & y"}],"page_count":1,"metadata":{"author":"A","title":"T <1>"}}`
	if string(res.ExtractedData) != wantPDF {
		t.Fatalf("pdf data %s\nwant %s", res.ExtractedData, wantPDF)
	}
	// The same bytes as encoding/json (without HTML escaping) writes for
	// the types the validator decodes into.
	for kind, doc := range map[string][]byte{"csv": []byte(csvDoc), "pdf": pdfDoc} {
		raw, err := extractor.Parse(kind, doc, agentapi.MaxExtractedDataBytes)
		if err != nil {
			t.Fatal(err)
		}
		var v any = &agentapi.CSVData{}
		if kind == "pdf" {
			v = &agentapi.PDFData{}
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatal(err)
		}
		again, _ := jsonrpc.Marshal(v)
		if !bytes.Equal(raw, again) {
			t.Errorf("%s: streamed %s\nencoding/json %s", kind, raw, again)
		}
	}
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
