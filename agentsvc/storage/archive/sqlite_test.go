package archive_test

// What only the SQLite store does: file paths and modes, pragmas, the
// single-writer lock, a file that is not a database. The behaviour both
// engines share is in contract_test.go.

import (
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
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
		{"other scheme", "mysql://admin:s3cret@db.internal/archive", "", `scheme "mysql"`},
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

// A write lock held by another process past busy_timeout (5 s) answers
// -32002 without the cause, logs it, and leaves no row.
func TestLockedBeyondBusyTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "archive.db")
	logs := &syncbuf.Buffer{}
	a := archivetest.Open(t, path, slog.New(slog.NewJSONHandler(logs, nil)))
	conn, err := rawDB(t, path).Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	_, err = a.Call("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true))
	conn.ExecContext(t.Context(), `ROLLBACK`)
	conn.Close()
	archivetest.WantCode(t, err, agentapi.CodeUnavailable)
	if strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "locked") {
		t.Fatalf("client error leaks the cause: %v", err)
	}
	if !strings.Contains(logs.String(), "locked") {
		t.Fatalf("cause not logged: %s", logs)
	}
	if n := a.Total(); n != 0 {
		t.Fatalf("%d rows after a failed archive", n)
	}
	if res := a.Must("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true)); res["created"] != true {
		t.Fatalf("retry after the failure: %v", res)
	}
}

func TestNotADatabase(t *testing.T) {
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not sqlite ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := archive.OpenDSN(t.Context(), "sqlite://"+junk, archivetest.Quiet); err == nil {
		s.Close()
		t.Fatal("junk accepted")
	}
}
