package archive

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
)

// The migration runner on both engines, with step lists of the tests' own
// (the contract suite, contract_test.go, runs the real ones).

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// runnerDB is a database with the runner's transactions on it and raw SQL
// access.
type runnerDB struct {
	begin func(context.Context) (*migration, error)
	exec  func(q string) error
	count func(q string) int
	// hold takes the migration lock the way another archivist's migration
	// would, until release is called.
	hold func() (release func())
	// open opens the real store on the database.
	open func() (Store, error)
}

var runnerEngines = []struct {
	name string
	db   func(t *testing.T) *runnerDB
}{
	{EngineSQLite, sqliteRunnerDB},
	{EnginePostgres, postgresRunnerDB},
}

func sqliteRunnerDB(t *testing.T) *runnerDB {
	path := filepath.Join(t.TempDir(), "archive.db")
	db, err := sql.Open("sqlite", "file:"+path+"?"+pragmas)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := func() string { return time.Now().UTC().Format(timeLayout) }
	return &runnerDB{
		begin: sqliteBegin(db, now),
		exec:  func(q string) error { _, err := db.Exec(q); return err },
		count: func(q string) int {
			var n int
			if err := db.QueryRow(q).Scan(&n); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			return n
		},
		hold: func() func() {
			conn, err := db.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
				t.Fatal(err)
			}
			return func() { conn.ExecContext(context.Background(), `ROLLBACK`); conn.Close() }
		},
		open: func() (Store, error) { return OpenDSN(t.Context(), DSNScheme+path, quiet) },
	}
}

func postgresRunnerDB(t *testing.T) *runnerDB {
	c := pgtest.Shared(t)
	d := c.NewDatabase(t)
	pool := d.Pool(t)
	return &runnerDB{
		begin: postgresBegin(pool, time.Now),
		exec:  func(q string) error { _, err := pool.Exec(context.Background(), q); return err },
		count: func(q string) int {
			var n int
			if err := pool.QueryRow(context.Background(), q).Scan(&n); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			return n
		},
		hold: func() func() {
			conn, err := pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
				t.Fatal(err)
			}
			return func() {
				conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
				conn.Release()
			}
		},
		open: func() (Store, error) {
			return Open(t.Context(), Config{DSN: c.DSN(d.Owner, "", d.Name), Password: d.Password}, quiet)
		},
	}
}

// A migration that fails part-way leaves neither its tables nor its version
// behind, and the next start with fixed code carries on from there.
func TestFailedMigrationRollsBack(t *testing.T) {
	for _, e := range runnerEngines {
		t.Run(e.name, func(t *testing.T) {
			db := e.db(t)
			broken := []string{
				`CREATE TABLE one (a INTEGER);`,
				`CREATE TABLE two (a INTEGER); INSERT INTO two VALUES (1); THIS IS NOT SQL;`,
			}
			if err := migrate(t.Context(), quiet, e.name, broken, db.begin); err == nil {
				t.Fatal("a broken migration was accepted")
			}
			if v := db.count(`SELECT MAX(version) FROM schema_migrations`); v != 1 {
				t.Fatalf("version %d; want 1", v)
			}
			if err := db.exec(`SELECT a FROM two`); err == nil {
				t.Fatal("half-applied migration left table two")
			}
			fixed := []string{`CREATE TABLE one (a INTEGER);`, `CREATE TABLE two (a INTEGER);`}
			if err := migrate(t.Context(), quiet, e.name, fixed, db.begin); err != nil {
				t.Fatal(err)
			}
			if v := db.count(`SELECT MAX(version) FROM schema_migrations`); v != 2 {
				t.Fatalf("version %d; want 2", v)
			}
		})
	}
}

// An archive written by an older program (schema version 2, before
// stage) is carried on to the current version with its documents intact.
func TestMigrationsContinueFromAnOlderVersion(t *testing.T) {
	for _, e := range runnerEngines {
		t.Run(e.name, func(t *testing.T) {
			db := e.db(t)
			steps := migrations
			if e.name == EnginePostgres {
				steps = postgresMigrations
			}
			if err := migrate(t.Context(), quiet, e.name, steps[:2], db.begin); err != nil {
				t.Fatal(err)
			}
			if err := db.exec(`INSERT INTO documents (document_id, s3_key, status, error, created_at, updated_at)
				VALUES ('old', 'incoming/old.pdf', 'failed', 'from before', '2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z')`); err != nil {
				t.Fatal(err)
			}
			s, err := db.open()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v := db.count(`SELECT MAX(version) FROM schema_migrations`); v != SchemaVersion() {
				t.Fatalf("version %d; want %d", v, SchemaVersion())
			}
			d, err := s.Get(t.Context(), "old")
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != "failed" || d.Error != "from before" || d.Stage != "" || d.CreatedAt != "2025-01-01T00:00:00.000000Z" {
				t.Fatalf("old document: %+v", d)
			}
			if _, err := s.UpdateStatus(t.Context(), "old", "rejected", "reprocessed"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A migration waits for the lock another archivist's migration holds
// (SQLite: its write lock, PostgreSQL: the advisory lock), and goes ahead
// once it is released.
func TestMigrationWaitsForTheLock(t *testing.T) {
	for _, e := range runnerEngines {
		t.Run(e.name, func(t *testing.T) {
			db := e.db(t)
			steps := []string{`CREATE TABLE one (a INTEGER);`}
			release := db.hold()
			// SQLite gives up after busy_timeout (5 s), PostgreSQL waits
			// as long as the context lets it.
			wait := time.Second
			if e.name == EngineSQLite {
				wait = 7 * time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			err := migrate(ctx, quiet, e.name, steps, db.begin)
			cancel()
			release()
			if err == nil {
				t.Fatal("migrated while another archivist held the lock")
			}
			if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "timeout") {
				t.Fatalf("refused with %v, want a lock wait that ran out", err)
			}
			if err := db.exec(`SELECT a FROM one`); err == nil {
				t.Fatal("the migration ran while the lock was held")
			}
			if err := migrate(t.Context(), quiet, e.name, steps, db.begin); err != nil {
				t.Fatal(err)
			}
			if v := db.count(`SELECT MAX(version) FROM schema_migrations`); v != 1 {
				t.Fatalf("version %d", v)
			}
		})
	}
}

func TestEnginesHaveTheSameVersions(t *testing.T) {
	if len(migrations) != len(postgresMigrations) {
		t.Fatalf("SQLite has %d migrations, PostgreSQL %d: a version must mean the same schema in both", len(migrations), len(postgresMigrations))
	}
}
