package archive_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// Archive failures answer -32002 without leaking the cause and leave no row:
// a write lock held by another process past busy_timeout (5 s), and an
// INSERT that the database refuses.
func TestArchiveFailureWritesNothing(t *testing.T) {
	tests := []struct {
		name   string
		inject func(t *testing.T, path string) (release func())
		cause  string // what the log must show
	}{
		{"locked beyond busy_timeout", func(t *testing.T, path string) func() {
			conn, err := rawDB(t, path).Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
				t.Fatal(err)
			}
			return func() {
				conn.ExecContext(t.Context(), `ROLLBACK`)
				conn.Close()
			}
		}, "locked"},
		{"insert refused", func(t *testing.T, path string) func() {
			raw := rawDB(t, path)
			if _, err := raw.Exec(`CREATE TRIGGER full BEFORE INSERT ON documents BEGIN SELECT RAISE(ABORT, 'disk full at ` + path + `'); END`); err != nil {
				t.Fatal(err)
			}
			return func() {
				if _, err := raw.Exec(`DROP TRIGGER full`); err != nil {
					t.Fatal(err)
				}
			}
		}, "disk full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "archive.db")
			logs := &syncbuf.Buffer{}
			a := archivetest.Open(t, path, slog.New(slog.NewJSONHandler(logs, nil)))
			release := tc.inject(t, path)
			_, err := a.Call("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true))
			release()
			archivetest.WantCode(t, err, agentapi.CodeUnavailable)
			if strings.Contains(err.Error(), path) || strings.Contains(err.Error(), tc.cause) {
				t.Fatalf("client error leaks the cause: %v", err)
			}
			if !strings.Contains(logs.String(), tc.cause) {
				t.Fatalf("cause not logged: %s", logs)
			}
			if n := a.Total(); n != 0 {
				t.Fatalf("%d rows after a failed archive", n)
			}
			if res := a.Must("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true)); res["created"] != true {
				t.Fatalf("retry after the failure: %v", res)
			}
		})
	}
}
