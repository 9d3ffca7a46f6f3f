package archivist_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/agentsvc/archivist"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fixture struct {
	store   *archivist.SQLite
	methods map[string]func(string) (map[string]any, error)
}

func open(t *testing.T, path string) *fixture {
	t.Helper()
	s, err := archivist.OpenDSN(t.Context(), "sqlite://"+path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &fixture{store: s, methods: map[string]func(string) (map[string]any, error){}}
	for _, m := range archivist.New(s).Methods() {
		f.methods[m.Name] = func(params string) (map[string]any, error) {
			out, err := m.Handler(t.Context(), json.RawMessage(params))
			if err != nil {
				return nil, err
			}
			data, _ := json.Marshal(out)
			var res map[string]any
			_ = json.Unmarshal(data, &res)
			return res, nil
		}
	}
	return f
}

func doc(id, name, docType string, passed bool) string {
	b, _ := json.Marshal(map[string]any{"document_id": id, "s3_key": "in/" + name, "file_name": name, "document_type": docType,
		"extracted_data": map[string]any{"page_count": 1}, "validation": map[string]any{"score": 90, "passed": passed}})
	return string(b)
}

func TestArchiveIdempotent(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "a.db"))
	var created atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			res, err := f.methods["archive_document"](doc("doc-1", "a.pdf", "pdf", true))
			if err != nil {
				t.Error(err)
				return
			}
			if res["created"] == true {
				created.Add(1)
			}
			if res["status"] != "archived" {
				t.Errorf("status %v", res["status"])
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("%d calls created the document, want 1", created.Load())
	}
	res, _ := f.methods["search_documents"](`{}`)
	if res["total"].(float64) != 1 {
		t.Fatalf("total %v", res["total"])
	}
	got, err := f.methods["get_document"](`{"document_id":"doc-1"}`)
	if err != nil || got["extracted_data"].(map[string]any)["page_count"].(float64) != 1 || got["score"].(float64) != 90 {
		t.Fatalf("get: %v %v", got, err)
	}
	if _, err := f.methods["get_document"](`{"document_id":"doc-2"}`); jsonrpc.CodeOf(err) != jsonrpc.CodeNotFound {
		t.Fatalf("missing: %v", err)
	}
}

func TestTransitions(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "a.db"))
	if _, err := f.methods["archive_document"](doc("d", "a.csv", "csv", false)); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		to   string
		code int
	}{
		{"archived", 0}, {"archived", archivist.CodeInvalidTransition}, {"failed", archivist.CodeInvalidTransition},
		{"rejected", 0}, {"superseded", 0}, {"archived", archivist.CodeInvalidTransition}, {"bogus", jsonrpc.CodeInvalidParams},
	}
	for _, s := range steps {
		res, err := f.methods["update_document_status"](`{"document_id":"d","status":"` + s.to + `","reason":"review"}`)
		if jsonrpc.CodeOf(err) != s.code && !(s.code == 0 && err == nil) {
			t.Fatalf("-> %s: %v, want code %d", s.to, err, s.code)
		}
		if s.code == 0 && res["status"] != s.to {
			t.Fatalf("-> %s: %v", s.to, res)
		}
	}
	if _, err := f.methods["update_document_status"](`{"document_id":"nope","status":"archived"}`); jsonrpc.CodeOf(err) != jsonrpc.CodeNotFound {
		t.Fatalf("missing: %v", err)
	}
}

func TestSearchAndStats(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "a.db"))
	for i, d := range []string{doc("a", "report_2026.pdf", "pdf", true), doc("b", "report%2026.pdf", "pdf", false), doc("c", "tx.csv", "csv", true)} {
		if _, err := f.methods["archive_document"](d); err != nil {
			t.Fatal(i, err)
		}
	}
	tests := []struct {
		params string
		total  float64
		n      int
	}{
		{`{}`, 3, 3},
		{`{"status":"archived"}`, 2, 2},
		{`{"document_type":"pdf"}`, 2, 2},
		{`{"file_name":"_"}`, 1, 1}, // a literal underscore, not a wildcard
		{`{"file_name":"%"}`, 1, 1},
		{`{"file_name":"report"}`, 2, 2},
		{`{"limit":1}`, 3, 1},
		{`{"limit":2,"offset":2}`, 3, 1},
	}
	for _, tc := range tests {
		res, err := f.methods["search_documents"](tc.params)
		if err != nil {
			t.Fatal(err)
		}
		docs := res["documents"].([]any)
		if res["total"].(float64) != tc.total || len(docs) != tc.n {
			t.Errorf("%s: total %v, %d docs", tc.params, res["total"], len(docs))
		}
		for _, d := range docs {
			if _, ok := d.(map[string]any)["extracted_data"]; ok {
				t.Fatal("search returns extracted_data")
			}
		}
	}
	st, err := f.methods["get_document_stats"](`{}`)
	if err != nil || st["total"].(float64) != 3 || st["by_status"].(map[string]any)["rejected"].(float64) != 1 || st["by_type"].(map[string]any)["csv"].(float64) != 1 {
		t.Fatalf("stats %v %v", st, err)
	}
}

func TestInvalidParams(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "a.db"))
	for name, params := range map[string]string{
		"unknown field":       `{"document_id":"a","s3_key":"k","document_type":"pdf","drop":1}`,
		"bad id":              `{"document_id":"a/../b","s3_key":"k","document_type":"pdf"}`,
		"no key":              `{"document_id":"a","document_type":"pdf"}`,
		"bad type":            `{"document_id":"a","s3_key":"k","document_type":"docx"}`,
		"bad status":          `{"document_id":"a","s3_key":"k","document_type":"pdf","status":"deleted"}`,
		"data not an object":  `{"document_id":"a","s3_key":"k","document_type":"pdf","extracted_data":[1]}`,
		"validation a string": `{"document_id":"a","s3_key":"k","document_type":"pdf","validation":"ok"}`,
	} {
		if _, err := f.methods["archive_document"](params); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, params := range []string{`{"limit":0}`, `{"limit":501}`, `{"offset":-1}`, `{"status":"x"}`} {
		if _, err := f.methods["search_documents"](params); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("search %s: %v", params, err)
		}
	}
	res, _ := f.methods["search_documents"](`{}`)
	if res["total"].(float64) != 0 {
		t.Fatal("a refused call wrote something")
	}
}

func TestPersistenceAndFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "a.db")
	f := open(t, path)
	if _, err := f.methods["archive_document"](doc("keep", "a.pdf", "pdf", true)); err != nil {
		t.Fatal(err)
	}
	f.store.Close()
	// A closed store: a clear, generic error.
	if _, err := f.methods["archive_document"](doc("x", "b.pdf", "pdf", true)); jsonrpc.CodeOf(err) != jsonrpc.CodeUnavailable {
		t.Fatalf("closed store: %v", err)
	}
	if err := f.store.Ping(t.Context()); err == nil {
		t.Fatal("ping of a closed store succeeded")
	}
	g := open(t, path)
	if _, err := g.methods["get_document"](`{"document_id":"keep"}`); err != nil {
		t.Fatalf("document lost across reopen: %v", err)
	}
	if _, err := g.methods["get_document"](`{"document_id":"x"}`); jsonrpc.CodeOf(err) != jsonrpc.CodeNotFound {
		t.Fatal("a failed archive left a row")
	}
	if _, err := archivist.OpenDSN(t.Context(), "postgres://x", quiet); err == nil {
		t.Fatal("unknown DSN accepted")
	}
}
