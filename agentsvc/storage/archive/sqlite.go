package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite" // the "sqlite" database/sql driver
)

// pragmas travel in the DSN so that every connection of the pool gets them,
// not only the first. busy_timeout comes first so that switching a fresh
// file to WAL waits for a concurrent opener instead of failing.
// _txlock=immediate: a read-then-write transaction (UpdateStatus, a
// migration) takes the write lock at BEGIN, so two of them queue on
// busy_timeout instead of one failing with SQLITE_BUSY on upgrade.
const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"

// maxOpenConns bounds the pool: SQLite serialises writers anyway, and each
// connection holds a page cache.
const maxOpenConns = 8

// timeLayout is fixed-width so that created_at sorts as text in time order
// (RFC3339Nano trims trailing zeros and does not).
const timeLayout = "2006-01-02T15:04:05.000000Z"

// migrations build the SQLite schema, in order, each in its own
// transaction. Never edit an applied one: append a new one, and its
// PostgreSQL twin to postgresMigrations, so that a version number means the
// same schema in both engines.
var migrations = []string{
	// 1: documents.
	`CREATE TABLE documents (
		document_id    TEXT PRIMARY KEY,
		s3_key         TEXT NOT NULL,
		bucket         TEXT NOT NULL DEFAULT '',
		document_type  TEXT NOT NULL DEFAULT '',
		file_name      TEXT NOT NULL DEFAULT '',
		sha256         TEXT NOT NULL DEFAULT '',
		status         TEXT NOT NULL,
		score          INTEGER,
		passed         INTEGER,
		extracted_data TEXT,
		validation     TEXT,
		error          TEXT NOT NULL DEFAULT '',
		created_at     TEXT NOT NULL,
		updated_at     TEXT NOT NULL
	);
	CREATE INDEX documents_status ON documents(status);
	CREATE INDEX documents_type ON documents(document_type);
	CREATE INDEX documents_created ON documents(created_at DESC, document_id);`,
	// 2: the audit trail of status changes.
	`CREATE TABLE status_history (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		document_id TEXT NOT NULL REFERENCES documents(document_id),
		from_status TEXT NOT NULL,
		to_status   TEXT NOT NULL,
		reason      TEXT NOT NULL DEFAULT '',
		changed_at  TEXT NOT NULL
	);`,
	// 3: where a failed document stopped; history by document.
	`ALTER TABLE documents ADD COLUMN stage TEXT NOT NULL DEFAULT '';
	CREATE INDEX status_history_document ON status_history(document_id);`,
}

// SchemaVersion is the schema version this code builds and understands, in
// either engine.
func SchemaVersion() int { return len(migrations) }

// SQLite is the Store on a SQLite file.
type SQLite struct {
	ops
	db  *sql.DB
	now func() time.Time
}

var _ Store = (*SQLite)(nil)

// MemoryPath, as in sqlite://:memory:, opens a private in-memory store that
// lives as long as the Store: for tests and throw-away local runs only.
// Nothing is written to disk.
const MemoryPath = ":memory:"

// openMemory opens an in-memory store. Every SQLite connection to :memory:
// is a database of its own, so the pool is pinned to one connection that
// never expires; callers queue on it, which is what SQLite's single writer
// would make them do anyway.
func openMemory(ctx context.Context, logger *slog.Logger) (*SQLite, error) {
	db, err := sql.Open("sqlite", "file::memory:?"+pragmas)
	if err != nil {
		return nil, fmt.Errorf("archivist: open archive: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return start(ctx, db, logger)
}

// openFile opens the store in the file at path (ARCHIVE_DSN sqlite://PATH),
// creating the parent directory (0700), the file (0600) and the schema as
// needed. path is a file-system path, relative to the working directory
// unless it starts with "/"; it is not parsed as a URL.
func openFile(ctx context.Context, path string, logger *slog.Logger) (*SQLite, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("archivist: archive path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("archivist: archive directory: %w", err)
	}
	// Created here so that it is 0600 whatever the umask; SQLite gives the
	// -wal and -shm files the mode of the database file.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("archivist: archive file: %w", err)
	}
	f.Close()

	db, err := sql.Open("sqlite", "file:"+escapeURIPath(abs)+"?"+pragmas)
	if err != nil {
		return nil, fmt.Errorf("archivist: open archive: %w", err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	return start(ctx, db, logger)
}

// start migrates the schema of a freshly opened pool.
func start(ctx context.Context, db *sql.DB, logger *slog.Logger) (*SQLite, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &SQLite{db: db, now: time.Now}
	s.e = engine{
		log: logger,
		db:  sqlQuerier{db},
		begin: func(ctx context.Context, readOnly bool) (txn, error) {
			tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: readOnly})
			if err != nil {
				return nil, err
			}
			return sqlTx{tx}, nil
		},
		noRows:       sql.ErrNoRows,
		now:          func() any { return s.stamp() },
		fileNameLike: `file_name LIKE ? ESCAPE '\'`,
		foldPattern:  func(p string) string { return p }, // LIKE folds ASCII itself
	}
	if err := firstConnection(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// sqliteBusy is SQLITE_BUSY, the primary result code of a lock conflict.
const sqliteBusy = 5

// firstOpenPatience bounds how long firstConnection retries.
const firstOpenPatience = 10 * time.Second

// firstConnection opens one connection, retrying on SQLITE_BUSY. Switching a
// new file to WAL (the journal_mode pragma every connection runs) needs an
// exclusive lock, and SQLite answers SQLITE_BUSY at once, without waiting
// busy_timeout, when another process is opening the same new file. Once the
// file is in WAL mode, which is persistent, the pragma takes no lock and
// later connections do not meet this.
func firstConnection(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(firstOpenPatience)
	wait := 5 * time.Millisecond
	for {
		c, err := db.Conn(ctx)
		if err == nil {
			return c.Close()
		}
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return fmt.Errorf("archivist: open archive: %w", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("archivist: open archive: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// escapeURIPath makes a filesystem path safe after "file:" in a SQLite URI:
// the driver splits the DSN at the first '?', and SQLite decodes %HH and
// stops at '#'.
func escapeURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// migrate runs the migration runner on SQLite. Everything of one step,
// including the creation of schema_migrations, happens inside one BEGIN
// IMMEDIATE transaction (_txlock=immediate): it takes the write lock up
// front, waiting on busy_timeout, so two processes starting on the same file
// apply each migration once. (A statement in autocommit mode that reads then
// writes can instead fail at once with SQLITE_BUSY in WAL mode when another
// connection wrote between its read and its write.)
func (s *SQLite) migrate(ctx context.Context) error {
	return migrate(ctx, s.e.log, EngineSQLite, migrations, sqliteBegin(s.db, s.stamp))
}

// sqliteVersionTable is schema_migrations in SQLite's types.
const sqliteVersionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL)`

// sqliteBegin starts migration transactions on db, whose DSN must carry
// _txlock=immediate.
func sqliteBegin(db *sql.DB, now func() string) func(context.Context) (*migration, error) {
	return func(ctx context.Context) (*migration, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		return &migration{tx: sqlTx{tx}, table: sqliteVersionTable, now: func() any { return now() }}, nil
	}
}

// sqlQuerier runs the operations' queries on a *sql.DB or *sql.Tx.
type sqlQuerier struct {
	q interface {
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
}

func (s sqlQuerier) queryRow(ctx context.Context, q string, args ...any) row {
	return s.q.QueryRowContext(ctx, q, args...)
}

func (s sqlQuerier) query(ctx context.Context, q string, args ...any) (rows, error) {
	rs, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rs}, nil
}

// sqlRows is *sql.Rows with the Close of the rows interface.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// sqlTx is a database/sql transaction as the operations use it.
type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) queryRow(ctx context.Context, q string, args ...any) row {
	return sqlQuerier{t.tx}.queryRow(ctx, q, args...)
}

func (t sqlTx) query(ctx context.Context, q string, args ...any) (rows, error) {
	return sqlQuerier{t.tx}.query(ctx, q, args...)
}

func (t sqlTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t sqlTx) commit(context.Context) error { return t.tx.Commit() }
func (t sqlTx) rollback(context.Context)     { _ = t.tx.Rollback() }

func (s *SQLite) stamp() string { return s.now().UTC().Format(timeLayout) }

// Ping implements Store: a query on the schema table, so a deleted or
// unreadable file fails, not only a closed pool. The error is for the log.
func (s *SQLite) Ping(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Close implements Store.
func (s *SQLite) Close() error { return s.db.Close() }
