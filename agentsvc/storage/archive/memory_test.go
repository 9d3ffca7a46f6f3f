package archive_test

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

func openMemory(t *testing.T) *archivetest.Agent {
	t.Helper()
	s, err := archive.OpenDSN(t.Context(), "sqlite://"+archive.MemoryPath, archivetest.Quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return archivetest.Wrap(t, s, "")
}

// sqlite://:memory: is a working store that writes nothing to disk, and
// each one is private.
func TestMemoryStore(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	a := openMemory(t)
	if err := a.Store.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}

	// One pinned connection still serves concurrent callers, and the
	// idempotence holds there too.
	var created atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			res, err := a.Call("archive_document", archivetest.Doc("doc-1", "a.pdf", "pdf", 90, true))
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
	a.Must("update_document_status", `{"document_id":"doc-1","status":"rejected"}`)
	if got := a.Must("get_document", `{"document_id":"doc-1"}`); got["status"] != "rejected" {
		t.Fatalf("%v", got)
	}
	if st := a.Must("get_document_stats", `{}`); st["total"].(float64) != 1 {
		t.Fatalf("stats %v", st)
	}

	b := openMemory(t)
	if n := b.Total(); n != 0 {
		t.Fatalf("a second in-memory store sees %d rows of the first", n)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("an in-memory store wrote %s", entries[0].Name())
	}

	a.Store.Close()
	_, err = a.Call("get_document", `{"document_id":"doc-1"}`)
	archivetest.WantCode(t, err, agentapi.CodeUnavailable)
}
