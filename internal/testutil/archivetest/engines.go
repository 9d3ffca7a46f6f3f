package archivetest

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
)

// Engine is an implementation of archive.Store under test. The contract
// tests run every case on each engine: the same cases, not two copies.
type Engine struct {
	Name string
	// NewDB creates a fresh, empty database (a SQLite file in a temporary
	// directory, a PostgreSQL database on the test binary's shared cluster).
	NewDB func(t testing.TB) *DB
}

// Engines are SQLite and PostgreSQL. PostgreSQL needs pgtest.SharedMain in
// the package's TestMain; without the server programs its cases are skipped
// loudly (failed when CI is set).
func Engines() []Engine {
	return []Engine{
		{Name: archive.EngineSQLite, NewDB: newSQLite},
		{Name: archive.EnginePostgres, NewDB: newPostgres},
	}
}

// ForEachEngine runs f as a subtest per engine.
func ForEachEngine(t *testing.T, f func(t *testing.T, e Engine)) {
	t.Helper()
	for _, e := range Engines() {
		t.Run(e.Name, func(t *testing.T) { f(t, e) })
	}
}

// DB is one database of an engine: how to open stores on it, and raw SQL
// access for what the store's interface does not show (history rows,
// schema versions, injected failures).
type DB struct {
	Engine string
	Config archive.Config
	// Where names the database in messages (file path or database name).
	Where string
	exec  func(ctx context.Context, q string) error
	count func(ctx context.Context, q string) (int, error)
}

// Open opens a store on the database (log nil: Quiet), closed when the
// test ends, and serves the archivist's methods on it. Each call is another
// pool: another archivist on the same database.
func (db *DB) Open(t testing.TB, log *slog.Logger) *Agent {
	t.Helper()
	if log == nil {
		log = Quiet
	}
	s, err := archive.Open(t.Context(), db.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return Wrap(t, s, db.Where)
}

// Exec runs raw SQL (no parameters; statements the two engines share, or
// pick one with db.Engine).
func (db *DB) Exec(t testing.TB, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.exec(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// Int runs a query answering one integer.
func (db *DB) Int(t testing.TB, q string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := db.count(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// History is the number of status_history rows of document id.
func (db *DB) History(t testing.TB, id string) int {
	t.Helper()
	return db.Int(t, "SELECT COUNT(*) FROM status_history WHERE document_id = '"+strings.ReplaceAll(id, "'", "''")+"'")
}

// Break makes every INSERT into table fail with message until the returned
// function is called: a trigger, the way a full disk or a broken constraint
// looks to the store.
func (db *DB) Break(t testing.TB, table, message string) (restore func()) {
	t.Helper()
	msg := strings.ReplaceAll(message, "'", "''")
	switch db.Engine {
	case archive.EngineSQLite:
		db.Exec(t, `CREATE TRIGGER archivetest_break BEFORE INSERT ON `+table+` BEGIN SELECT RAISE(ABORT, '`+msg+`'); END`)
		return func() { db.Exec(t, `DROP TRIGGER archivetest_break`) }
	default:
		db.Exec(t, `CREATE FUNCTION archivetest_break() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION '%', '`+msg+`'; END $$;
			CREATE TRIGGER archivetest_break BEFORE INSERT ON `+table+` FOR EACH ROW EXECUTE FUNCTION archivetest_break();`)
		return func() {
			db.Exec(t, `DROP TRIGGER archivetest_break ON `+table+`; DROP FUNCTION archivetest_break();`)
		}
	}
}

func newSQLite(t testing.TB) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "archive.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &DB{
		Engine: archive.EngineSQLite, Config: archive.Config{DSN: archive.DSNScheme + path}, Where: path,
		exec: func(ctx context.Context, q string) error { _, err := raw.ExecContext(ctx, q); return err },
		count: func(ctx context.Context, q string) (int, error) {
			var n int
			err := raw.QueryRowContext(ctx, q).Scan(&n)
			return n, err
		},
	}
}

// newPostgres creates a database on the shared cluster. The store gets the
// password the way production does, through ARCHIVE_DB_PASSWORD (Config.Password),
// not in the DSN.
func newPostgres(t testing.TB) *DB {
	t.Helper()
	c := pgtest.Shared(t)
	d := c.NewDatabase(t)
	pool := d.Pool(t)
	return &DB{
		Engine: archive.EnginePostgres, Where: d.Name,
		Config: archive.Config{DSN: c.DSN(d.Owner, "", d.Name), Password: d.Password},
		exec:   func(ctx context.Context, q string) error { _, err := pool.Exec(ctx, q); return err },
		count: func(ctx context.Context, q string) (int, error) {
			var n int
			err := pool.QueryRow(ctx, q).Scan(&n)
			return n, err
		},
	}
}

// String names the database for messages.
func (db *DB) String() string { return fmt.Sprintf("%s %s", db.Engine, db.Where) }
