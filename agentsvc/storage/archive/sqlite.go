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

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
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
	db  *sql.DB
	log *slog.Logger
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
	s := &SQLite{db: db, log: logger, now: time.Now}
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
	return migrate(ctx, s.log, EngineSQLite, migrations, sqliteBegin(s.db, s.stamp))
}

// sqliteBegin starts migration transactions on db, whose DSN must carry
// _txlock=immediate.
func sqliteBegin(db *sql.DB, now func() string) func(context.Context) (migrationTx, error) {
	return func(ctx context.Context) (migrationTx, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		return &sqliteMigration{tx: tx, now: now}, nil
	}
}

// sqliteMigration is a migrationTx on a BEGIN IMMEDIATE transaction.
type sqliteMigration struct {
	tx  *sql.Tx
	now func() string
}

func (m *sqliteMigration) version(ctx context.Context) (int, error) {
	if _, err := m.tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("schema_migrations: %w", err)
	}
	var v int
	err := m.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (m *sqliteMigration) exec(ctx context.Context, q string) error {
	_, err := m.tx.ExecContext(ctx, q)
	return err
}

func (m *sqliteMigration) record(ctx context.Context, version int) error {
	_, err := m.tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, version, m.now())
	return err
}

func (m *sqliteMigration) commit(context.Context) error { return m.tx.Commit() }
func (m *sqliteMigration) rollback(context.Context)     { _ = m.tx.Rollback() }

func (s *SQLite) stamp() string { return s.now().UTC().Format(timeLayout) }

func (s *SQLite) unavailable(ctx context.Context, op, id string, err error) error {
	return storeFailure(ctx, s.log, op, id, err)
}

// Archive implements Store. The INSERT ... ON CONFLICT DO NOTHING, the
// history row of a new document and the read of the stored row share one
// (immediate) transaction: there is no check-then-insert window, and the
// row returned is the one that won.
func (s *SQLite) Archive(ctx context.Context, d *agentapi.Document) (*agentapi.Document, bool, error) {
	now := s.stamp()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, s.unavailable(ctx, "archive", d.DocumentID, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO documents (`+columns+`)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(document_id) DO NOTHING`,
		d.DocumentID, d.S3Key, d.Bucket, d.DocumentType, d.FileName, d.SHA256, d.Status,
		nullInt(d.Score), nullBool(d.Passed), nullJSON(d.ExtractedData), nullJSON(d.Validation),
		d.Stage, d.Error, now, now)
	if err != nil {
		return nil, false, s.unavailable(ctx, "archive", d.DocumentID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, false, s.unavailable(ctx, "archive", d.DocumentID, err)
	}
	if n == 1 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO status_history(document_id, from_status, to_status, reason, changed_at) VALUES (?,?,?,?,?)`,
			d.DocumentID, "", d.Status, CreatedReason, now); err != nil {
			return nil, false, s.unavailable(ctx, "archive", d.DocumentID, err)
		}
	}
	stored, err := s.get(ctx, tx, d.DocumentID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			// Inserted or found a moment ago in this transaction.
			return nil, false, s.unavailable(ctx, "archive", d.DocumentID, errors.New("row missing after insert"))
		}
		return nil, false, err
	}
	if err := tx.Commit(); err != nil {
		return nil, false, s.unavailable(ctx, "archive", d.DocumentID, err)
	}
	return stored, n == 1, nil
}

func nullInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func nullBool(p *bool) any {
	if p == nil {
		return nil
	}
	return *p
}

func nullJSON(r []byte) any {
	if len(r) == 0 {
		return nil
	}
	return string(r)
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, id string) (*agentapi.Document, error) {
	return s.get(ctx, s.db, id)
}

// querier is what Get needs of a pool or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *SQLite) get(ctx context.Context, q querier, id string) (*agentapi.Document, error) {
	d, err := scanDocument(q.QueryRowContext(ctx, `SELECT `+columns+` FROM documents WHERE document_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.unavailable(ctx, "get", id, err)
	}
	return d, nil
}

// UpdateStatus implements Store. The read, the conditioned update and the
// history row share one transaction; the update is conditioned on the
// status read, so a concurrent change is never overwritten.
func (s *SQLite) UpdateStatus(ctx context.Context, id, status, reason string) (string, error) {
	if !agentapi.ValidStatus(status) {
		return "", fmt.Errorf("%w %q", ErrUnknownStatus, status)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	defer tx.Rollback()
	var prev string
	err = tx.QueryRowContext(ctx, `SELECT status FROM documents WHERE document_id = ?`, id).Scan(&prev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	if !agentapi.CanTransition(prev, status) {
		return prev, &TransitionError{From: prev, To: status}
	}
	now := s.stamp()
	res, err := tx.ExecContext(ctx, `UPDATE documents SET status = ?, updated_at = ? WHERE document_id = ? AND status = ?`,
		status, now, id, prev)
	if err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	if n != 1 {
		// Cannot happen under BEGIN IMMEDIATE; refuse rather than guess.
		return "", s.unavailable(ctx, "update_status", id, fmt.Errorf("conditioned update touched %d rows", n))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO status_history(document_id, from_status, to_status, reason, changed_at) VALUES (?,?,?,?,?)`,
		id, prev, status, reason, now); err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	if err := tx.Commit(); err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	return prev, nil
}

// Search implements Store. The count and the page come from one read
// transaction, so they describe the same snapshot.
func (s *SQLite) Search(ctx context.Context, q Query) ([]agentapi.DocumentSummary, int, error) {
	var where []string
	var args []any
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, q.Status)
	}
	if q.DocumentType != "" {
		where, args = append(where, "document_type = ?"), append(args, q.DocumentType)
	}
	if q.FileName != "" {
		where, args = append(where, `file_name LIKE ? ESCAPE '\'`), append(args, "%"+escapeLike(q.FileName)+"%")
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, s.unavailable(ctx, "search", "", err)
	}
	defer tx.Rollback()
	var total int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM documents`+cond, args...).Scan(&total); err != nil {
		return nil, 0, s.unavailable(ctx, "search", "", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+summaryColumns+` FROM documents`+cond+
		` ORDER BY created_at DESC, document_id LIMIT ? OFFSET ?`, append(args, q.Limit, q.Offset)...)
	if err != nil {
		return nil, 0, s.unavailable(ctx, "search", "", err)
	}
	defer rows.Close()
	page, err := scanSummaries(rows)
	if err != nil {
		return nil, 0, s.unavailable(ctx, "search", "", err)
	}
	return page, total, nil
}

// Stats implements Store with one grouped query, hence one snapshot.
func (s *SQLite) Stats(ctx context.Context) (*agentapi.DocumentStats, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT status, document_type, COUNT(*), COUNT(score), COALESCE(SUM(score), 0)
		FROM documents GROUP BY status, document_type`)
	if err != nil {
		return nil, s.unavailable(ctx, "stats", "", err)
	}
	defer rows.Close()
	st, err := aggregateStats(rows)
	if err != nil {
		return nil, s.unavailable(ctx, "stats", "", err)
	}
	return st, nil
}

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
