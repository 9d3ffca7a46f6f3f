package archive_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/archivist"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// rawDB opens the archive file directly, as an operator or another
// program would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func versions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestOpenDSN(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	tests := []struct {
		name, dsn string
		file      string // expected database file, "" when refused
		wantErr   string
	}{
		{"relative", "sqlite://./data/archive.db", filepath.Join(dir, "data", "archive.db"), ""},
		{"relative without dot", "sqlite://rel/a.db", filepath.Join(dir, "rel", "a.db"), ""},
		{"absolute", "sqlite://" + filepath.Join(dir, "abs", "deep", "a.db"), filepath.Join(dir, "abs", "deep", "a.db"), ""},
		{"URL-special characters are plain path characters", "sqlite://odd/a?b#c%20d.db", filepath.Join(dir, "odd", "a?b#c%20d.db"), ""},
		{"other scheme", "postgres://admin:s3cret@db.internal/archive", "", `scheme "postgres"`},
		{"no scheme", "./archive.db", "", "sqlite://PATH"},
		{"empty path", "sqlite://", "", "file path"},
		{"uppercase scheme", "SQLITE://a.db", "", "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := archive.OpenDSN(t.Context(), tc.dsn, archivetest.Quiet)
			if tc.wantErr != "" {
				if err == nil {
					s.Close()
					t.Fatal("accepted")
				}
				if !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Ping(t.Context()); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(tc.file)
			if err != nil {
				t.Fatalf("database not at %s: %v", tc.file, err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
			}
			di, _ := os.Stat(filepath.Dir(tc.file))
			if di.Mode().Perm() != 0o700 {
				t.Errorf("directory mode %v, want 0700", di.Mode().Perm())
			}
		})
	}
}

func TestPragmasOnEveryConnection(t *testing.T) {
	a := archivetest.New(t)
	db := archive.DB(a.Store)
	ctx := t.Context()
	// Hold several connections at once so that the pool has to open new ones.
	var conns []*sql.Conn
	for range 4 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		for pragma, want := range map[string]string{"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1", "synchronous": "1"} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("connection %d: %s = %s, want %s", i, pragma, got, want)
			}
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "archive.db")
	want := archive.SchemaVersion()
	t.Run("fresh", func(t *testing.T) {
		s, err := archive.OpenDSN(t.Context(), "sqlite://"+path, archivetest.Quiet)
		if err != nil {
			t.Fatal(err)
		}
		archivetest.Wrap(t, s, path).Must("archive_document", archivetest.Doc("kept", "a.pdf", "pdf", 90, true))
		s.Close()
		if v := versions(t, rawDB(t, path)); len(v) != want || v[len(v)-1] != want {
			t.Fatalf("versions %v, want 1..%d", v, want)
		}
	})
	t.Run("reopen is a no-op and keeps data", func(t *testing.T) {
		for range 2 {
			a := archivetest.Open(t, path, nil)
			if got := a.Must("get_document", `{"document_id":"kept"}`); got["status"] != "archived" {
				t.Fatalf("%v", got)
			}
			a.Store.Close()
		}
		if v := versions(t, rawDB(t, path)); len(v) != want {
			t.Fatalf("versions %v after reopen", v)
		}
	})
	// Switching a new file to WAL races between first openers (SQLITE_BUSY
	// without busy_timeout); several rounds make a regression show.
	t.Run("concurrent first opens", func(t *testing.T) {
		for round := range 5 {
			fresh := filepath.Join(t.TempDir(), fmt.Sprintf("race%d.db", round))
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for range 8 {
				wg.Go(func() {
					s, err := archive.OpenDSN(t.Context(), "sqlite://"+fresh, archivetest.Quiet)
					if err == nil {
						s.Close()
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if v := versions(t, rawDB(t, fresh)); len(v) != want {
				t.Fatalf("versions %v", v)
			}
		}
	})
	t.Run("newer schema refused", func(t *testing.T) {
		if _, err := rawDB(t, path).Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (?, 'future')`, want+1); err != nil {
			t.Fatal(err)
		}
		s, err := archive.OpenDSN(t.Context(), "sqlite://"+path, archivetest.Quiet)
		if err == nil {
			s.Close()
			t.Fatal("a newer schema was accepted")
		}
		if !strings.Contains(err.Error(), "newer") {
			t.Fatalf("error %q", err)
		}
	})
	t.Run("not a database", func(t *testing.T) {
		junk := filepath.Join(t.TempDir(), "junk.db")
		if err := os.WriteFile(junk, []byte(strings.Repeat("not sqlite ", 100)), 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := archive.OpenDSN(t.Context(), "sqlite://"+junk, archivetest.Quiet); err == nil {
			s.Close()
			t.Fatal("junk accepted")
		}
	})
}

func TestPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "archive.db")
	a := archivetest.Open(t, path, nil)
	a.Must("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true))
	a.Must("update_document_status", `{"document_id":"d1","status":"rejected","reason":"manual"}`)
	// WAL: a second pool sees committed rows while the first is still open.
	b := archivetest.Open(t, path, nil)
	if got := b.Must("get_document", `{"document_id":"d1"}`); got["status"] != "rejected" {
		t.Fatalf("second reader: %v", got)
	}
	a.Store.Close()
	b.Store.Close()
	c := archivetest.Open(t, path, nil)
	got := c.Must("get_document", `{"document_id":"d1"}`)
	if got["status"] != "rejected" || got["extracted_data"] == nil {
		t.Fatalf("after reopen: %v", got)
	}
	var n int
	if err := rawDB(t, path).QueryRow(`SELECT COUNT(*) FROM status_history WHERE document_id = 'd1' AND reason = 'manual'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("history rows %d, %v", n, err)
	}
}

func TestStoreFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "archive.db")
	logs := &syncbuf.Buffer{}
	a := archivetest.Open(t, path, slog.New(slog.NewJSONHandler(logs, nil)))
	a.Must("archive_document", archivetest.Doc("kept", "a.pdf", "pdf", 90, true))
	a.Store.Close()

	calls := []struct{ method, params string }{
		{"archive_document", archivetest.Doc("new", "b.pdf", "pdf", 90, true)},
		{"get_document", `{"document_id":"kept"}`},
		{"update_document_status", `{"document_id":"kept","status":"rejected"}`},
		{"search_documents", `{}`},
		{"get_document_stats", `{}`},
	}
	for _, c := range calls {
		t.Run(c.method, func(t *testing.T) {
			_, err := a.Call(c.method, c.params)
			archivetest.WantCode(t, err, agentapi.CodeUnavailable)
			var rpc *jsonrpc.Error
			errors.As(err, &rpc)
			if rpc.Message != "archive store unavailable" || rpc.Data != nil {
				t.Fatalf("client sees %q %v", rpc.Message, rpc.Data)
			}
		})
	}
	if err := a.Store.Ping(t.Context()); err == nil {
		t.Fatal("ping of a closed store succeeded")
	}
	if !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "database is closed") {
		t.Fatalf("failure not logged: %s", logs)
	}
	b := archivetest.Open(t, path, nil)
	if got := b.Must("get_document", `{"document_id":"kept"}`); got["status"] != "archived" {
		t.Fatalf("kept: %v", got)
	}
	_, err := b.Call("get_document", `{"document_id":"new"}`)
	archivetest.WantCode(t, err, agentapi.CodeNotFound)
}

// A failure inside the status transaction leaves neither the new status nor
// a history row behind, and the client learns nothing about the SQL.
func TestUpdateStatusIsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "archive.db")
	logs := &syncbuf.Buffer{}
	a := archivetest.Open(t, path, slog.New(slog.NewJSONHandler(logs, nil)))
	a.Must("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true))
	before := a.Must("get_document", `{"document_id":"d1"}`)
	raw := rawDB(t, path)
	if _, err := raw.Exec(`CREATE TRIGGER history_broken BEFORE INSERT ON status_history BEGIN SELECT RAISE(ABORT, 'disk on fire at ` + path + `'); END`); err != nil {
		t.Fatal(err)
	}
	_, err := a.Call("update_document_status", `{"document_id":"d1","status":"rejected"}`)
	archivetest.WantCode(t, err, agentapi.CodeUnavailable)
	if strings.Contains(err.Error(), "fire") || strings.Contains(err.Error(), path) {
		t.Fatalf("client error leaks internals: %v", err)
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Fatalf("cause not logged: %s", logs)
	}
	after := a.Must("get_document", `{"document_id":"d1"}`)
	if after["status"] != "archived" || after["updated_at"] != before["updated_at"] {
		t.Fatalf("half-written update: %v", after)
	}
	var n int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM status_history`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("history rows %d, %v", n, err)
	}
	if _, err := raw.Exec(`DROP TRIGGER history_broken`); err != nil {
		t.Fatal(err)
	}
	a.Must("update_document_status", `{"document_id":"d1","status":"rejected"}`)
}

func TestCanceledContext(t *testing.T) {
	a := archivetest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, m := range archivist.New(a.Store).Methods() {
		if m.Name == "get_document" {
			_, err := m.Handler(ctx, []byte(`{"document_id":"x"}`))
			archivetest.WantCode(t, err, agentapi.CodeUnavailable)
		}
	}
}
