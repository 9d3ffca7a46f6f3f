package archivist_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/archivist"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

func openMemory(t *testing.T) *agent {
	t.Helper()
	s, err := archivist.OpenDSN(t.Context(), "sqlite://"+archivist.MemoryPath, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return wrap(t, s, "")
}

// sqlite://:memory: is a working store that writes nothing to disk, and
// each one is private.
func TestMemoryStore(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	a := openMemory(t)
	if err := a.store.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}

	// One pinned connection still serves concurrent callers, and the
	// idempotence holds there too.
	var created atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			res, err := a.call("archive_document", doc("doc-1", "a.pdf", "pdf", 90, true))
			if err != nil {
				t.Error(err)
				return
			}
			if res["created"] == true {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	if n := created.Load(); n != 1 {
		t.Fatalf("%d created:true, want 1", n)
	}
	a.must("update_document_status", `{"document_id":"doc-1","status":"rejected"}`)
	if got := a.must("get_document", `{"document_id":"doc-1"}`); got["status"] != "rejected" {
		t.Fatalf("%v", got)
	}
	if st := a.must("get_document_stats", `{}`); st["total"].(float64) != 1 {
		t.Fatalf("stats %v", st)
	}

	b := openMemory(t)
	if n := b.total(); n != 0 {
		t.Fatalf("a second in-memory store sees %d rows of the first", n)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("an in-memory store wrote %s", entries[0].Name())
	}

	a.store.Close()
	_, err = a.call("get_document", `{"document_id":"doc-1"}`)
	wantCode(t, err, agentapi.CodeUnavailable)
}

// rawErrStore is a Store that fails with raw errors, as a careless
// implementation would.
type rawErrStore struct {
	archivist.Store
	err error
}

func (s rawErrStore) Get(context.Context, string) (*agentapi.Document, error) { return nil, s.err }

// Whatever a Store returns, the client sees a generic -32002; the cause is
// logged once: by the Archivist when the store did not classify it, by the
// store when it did.
func TestUnclassifiedStoreErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantLogged bool
	}{
		{"raw error is logged by the archivist", errors.New("open /srv/secret/archive.db: disk I/O error"), true},
		{"classified error is not logged twice", fmt.Errorf("%w (get)", archivist.ErrUnavailable), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			a := archivist.New(rawErrStore{err: tc.err}, archivist.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
			var get func(context.Context, []byte) (any, error)
			for _, m := range a.Methods() {
				if m.Name == "get_document" {
					get = func(ctx context.Context, p []byte) (any, error) { return m.Handler(ctx, p) }
				}
			}
			_, err := get(t.Context(), []byte(`{"document_id":"d1"}`))
			wantCode(t, err, agentapi.CodeUnavailable)
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "disk") {
				t.Fatalf("client error leaks the cause: %v", err)
			}
			logged := strings.Contains(logs.String(), `"level":"ERROR"`)
			if logged != tc.wantLogged {
				t.Fatalf("logged %v, want %v: %s", logged, tc.wantLogged, logs)
			}
			if logged && (!strings.Contains(logs.String(), "disk I/O error") || !strings.Contains(logs.String(), `"method":"get_document"`)) {
				t.Fatalf("log lacks cause or method: %s", logs)
			}
		})
	}
}
