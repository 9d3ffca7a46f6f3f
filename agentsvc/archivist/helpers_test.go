package archivist_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/agentsvc/archivist"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// agent is an archivist on a real SQLite file, called the way the server
// calls it: raw params in, JSON out.
type agent struct {
	t       *testing.T
	store   archivist.Store
	path    string
	methods map[string]func(json.RawMessage) (any, error)
}

func openAt(t *testing.T, path string, log *slog.Logger) *agent {
	t.Helper()
	if log == nil {
		log = quiet
	}
	s, err := archivist.OpenDSN(t.Context(), "sqlite://"+path, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return wrap(t, s, path)
}

func wrap(t *testing.T, s archivist.Store, path string) *agent {
	a := &agent{t: t, store: s, path: path, methods: map[string]func(json.RawMessage) (any, error){}}
	for _, m := range archivist.New(s).Methods() {
		a.methods[m.Name] = func(p json.RawMessage) (any, error) { return m.Handler(t.Context(), p) }
	}
	return a
}

func newAgent(t *testing.T) *agent {
	return openAt(t, filepath.Join(t.TempDir(), "archive.db"), nil)
}

// call runs method and returns its result as generic JSON.
func (a *agent) call(method, params string) (map[string]any, error) {
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

// must calls method and fails the test on an error.
func (a *agent) must(method, params string) map[string]any {
	a.t.Helper()
	res, err := a.call(method, params)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, params, err)
	}
	return res
}

// total is the number of stored documents.
func (a *agent) total() int {
	a.t.Helper()
	return int(a.must("search_documents", `{}`)["total"].(float64))
}

func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want code %d", code)
	}
	if got := jsonrpc.CodeOf(err); got != code {
		t.Fatalf("code %d (%v), want %d", got, err, code)
	}
}

// doc builds archive_document params.
func doc(id, fileName, docType string, score int, passed bool, extra ...string) string {
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
