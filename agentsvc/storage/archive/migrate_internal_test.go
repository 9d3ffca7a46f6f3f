package archive

import (
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
)

// A migration that fails part-way leaves neither its tables nor its version
// behind, and the next start with fixed code carries on from there.
func TestFailedMigrationRollsBack(t *testing.T) {
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "archive.db")

	migrations = []string{
		`CREATE TABLE one (a INTEGER);`,
		`CREATE TABLE two (a INTEGER); INSERT INTO two VALUES (1); THIS IS NOT SQL;`,
	}
	if s, err := openFile(t.Context(), path, log); err == nil {
		s.Close()
		t.Fatal("a broken migration was accepted")
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version, tables int
	if err := db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != 1 {
		t.Fatalf("version %d, %v; want 1", version, err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'two'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("half-applied migration left table two (%d, %v)", tables, err)
	}

	migrations = []string{`CREATE TABLE one (a INTEGER);`, `CREATE TABLE two (a INTEGER);`}
	s, err := openFile(t.Context(), path, log)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != 2 {
		t.Fatalf("version %d, %v; want 2", version, err)
	}
}
