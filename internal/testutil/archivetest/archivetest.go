// Package archivetest runs the archivist's JSON-RPC methods on a real
// archive store, called the way the agent server calls them: raw params in,
// JSON out. The method tests (agents/archivist) and the store tests
// (storage/archive) share it; engines.go runs them on SQLite and PostgreSQL.
package archivetest

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/archivist"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Quiet discards what the store logs.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Agent is an archivist on a store.
type Agent struct {
	t       testing.TB
	Store   archive.Store
	Path    string // where the store is (SQLite file, PostgreSQL database), for messages
	methods map[string]func(json.RawMessage) (any, error)
}

// Open opens the SQLite store at path (log nil: Quiet), closed when the
// test ends.
func Open(t testing.TB, path string, log *slog.Logger) *Agent {
	t.Helper()
	return OpenDSN(t, "sqlite://"+path, path, log)
}

// OpenDSN opens the store dsn names; path is what Agent.Path reports.
func OpenDSN(t testing.TB, dsn, path string, log *slog.Logger) *Agent {
	t.Helper()
	if log == nil {
		log = Quiet
	}
	s, err := archive.OpenDSN(t.Context(), dsn, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return Wrap(t, s, path)
}

// New opens a fresh store in a temporary directory.
func New(t testing.TB) *Agent {
	t.Helper()
	return Open(t, filepath.Join(t.TempDir(), "archive.db"), nil)
}

// Wrap serves the archivist's methods on s.
func Wrap(t testing.TB, s archive.Store, path string) *Agent {
	a := &Agent{t: t, Store: s, Path: path, methods: map[string]func(json.RawMessage) (any, error){}}
	for _, m := range archivist.New(s).Methods() {
		a.methods[m.Name] = func(p json.RawMessage) (any, error) { return m.Handler(t.Context(), p) }
	}
	return a
}

// Call runs method and returns its result as generic JSON. A handler error
// that is not a *jsonrpc.Error fails the test: the client would see -32603.
func (a *Agent) Call(method, params string) (map[string]any, error) {
	h, ok := a.methods[method]
	if !ok {
		a.t.Fatalf("no method %s", method)
	}
	out, err := h(json.RawMessage(params))
	if err != nil {
		var rpc *jsonrpc.Error
		if !errors.As(err, &rpc) {
			a.t.Fatalf("%s returned a non-JSON-RPC error: %v", method, err)
		}
		return nil, err
	}
	data, err := json.Marshal(out)
	if err != nil {
		a.t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(data, &res); err != nil {
		a.t.Fatal(err)
	}
	return res, nil
}

// Must calls method and fails the test on an error.
func (a *Agent) Must(method, params string) map[string]any {
	a.t.Helper()
	res, err := a.Call(method, params)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, params, err)
	}
	return res
}

// Total is the number of stored documents.
func (a *Agent) Total() int {
	a.t.Helper()
	return int(a.Must("search_documents", `{}`)["total"].(float64))
}

// WantCode fails the test unless err carries the JSON-RPC code.
func WantCode(t testing.TB, err error, code int) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want code %d", code)
	}
	if got := jsonrpc.CodeOf(err); got != code {
		t.Fatalf("code %d (%v), want %d", got, err, code)
	}
}

// Doc builds archive_document params; extra are more key, value pairs.
func Doc(id, fileName, docType string, score int, passed bool, extra ...string) string {
	m := map[string]any{"document_id": id, "s3_key": "incoming/" + fileName, "bucket": "docs", "file_name": fileName,
		"document_type": docType, "sha256": "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12",
		"extracted_data": map[string]any{"pages": []string{"hello"}},
		"validation":     map[string]any{"score": score, "passed": passed, "issues": []any{}}}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}
