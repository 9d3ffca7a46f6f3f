// Package archivist keeps processed documents in an embedded SQLite store
// (modernc.org/sqlite, pure Go, WAL) and offers them over JSON-RPC.
//
// Statuses and allowed transitions:
//
//	archived -> rejected   (a reviewer overrules validation)
//	rejected -> archived   (a reviewer accepts the document)
//	failed   -> archived | rejected (reprocessed)
//	archived | rejected -> superseded (a newer version replaced it)
//
// archive_document is idempotent on document_id: one INSERT ... ON CONFLICT
// DO NOTHING, so concurrent redeliveries create one row.
package archivist

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

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Errors the methods map to JSON-RPC codes.
var (
	ErrNotFound          = errors.New("archivist: document not found")
	ErrInvalidTransition = errors.New("archivist: status transition not allowed")
	ErrUnavailable       = errors.New("archivist: store unavailable")
)

// Statuses.
const (
	StatusArchived   = "archived"
	StatusRejected   = "rejected"
	StatusFailed     = "failed"
	StatusSuperseded = "superseded"
)

var transitions = map[string][]string{
	StatusArchived: {StatusRejected, StatusSuperseded},
	StatusRejected: {StatusArchived, StatusSuperseded},
	StatusFailed:   {StatusArchived, StatusRejected},
}

// ValidStatus reports whether s is a known status.
func ValidStatus(s string) bool {
	switch s {
	case StatusArchived, StatusRejected, StatusFailed, StatusSuperseded:
		return true
	}
	return false
}

// Document is one archived document.
type Document struct {
	DocumentID    string  `json:"document_id"`
	S3Key         string  `json:"s3_key"`
	Bucket        string  `json:"bucket"`
	DocumentType  string  `json:"document_type"`
	FileName      string  `json:"file_name"`
	SHA256        string  `json:"sha256"`
	Status        string  `json:"status"`
	Score         *int    `json:"score"`
	Passed        *bool   `json:"passed"`
	ExtractedData RawJSON `json:"extracted_data,omitempty"`
	Validation    RawJSON `json:"validation,omitempty"`
	Error         string  `json:"error,omitempty"`
	CreatedAt     string  `json:"created_at"`
	UpdatedAt     string  `json:"updated_at"`
}

// Query filters Search.
type Query struct {
	Status, DocumentType, FileName string
	Limit, Offset                  int
}

// Stats summarises the store.
type Stats struct {
	Total        int            `json:"total"`
	ByStatus     map[string]int `json:"by_status"`
	ByType       map[string]int `json:"by_type"`
	AverageScore *float64       `json:"average_score"`
}

// Store is where documents are kept.
type Store interface {
	// Archive inserts d unless its id exists; it returns the stored row and
	// whether it was created.
	Archive(ctx context.Context, d *Document) (*Document, bool, error)
	Get(ctx context.Context, id string) (*Document, error)
	UpdateStatus(ctx context.Context, id, status, reason string) (previous string, err error)
	Search(ctx context.Context, q Query) ([]Document, int, error)
	Stats(ctx context.Context) (*Stats, error)
	Ping(ctx context.Context) error
	Close() error
}

// SQLite is the Store on a SQLite file.
type SQLite struct {
	db  *sql.DB
	log *slog.Logger
	now func() time.Time
}

// OpenDSN opens ARCHIVE_DSN, sqlite://PATH (relative to the working
// directory unless it starts with "/"), creating and migrating the database.
func OpenDSN(ctx context.Context, dsn string, log *slog.Logger) (*SQLite, error) {
	path, ok := strings.CutPrefix(dsn, "sqlite://")
	if !ok || path == "" {
		return nil, fmt.Errorf("archivist: ARCHIVE_DSN must be sqlite://PATH, got %q", dsn)
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("archivist: %w", err)
		}
	}
	return Open(ctx, path, log)
}

// Open opens the SQLite database at path.
func Open(ctx context.Context, path string, log *slog.Logger) (*SQLite, error) {
	if log == nil {
		log = slog.Default()
	}
	// Pragmas in the DSN apply to every pooled connection.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("archivist: %w", err)
	}
	s := &SQLite{db: db, log: log, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// migrations are applied in order, each in its own transaction.
var migrations = []string{
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
	`CREATE TABLE status_history (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		document_id TEXT NOT NULL REFERENCES documents(document_id),
		from_status TEXT NOT NULL,
		to_status   TEXT NOT NULL,
		reason      TEXT NOT NULL DEFAULT '',
		changed_at  TEXT NOT NULL
	);`,
}

func (s *SQLite) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("archivist: migrations: %w", err)
	}
	var current int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("archivist: migrations: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("archivist: database schema version %d is newer than this program knows (%d)", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("archivist: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("archivist: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, s.stamp()); err != nil {
			tx.Rollback()
			return fmt.Errorf("archivist: migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("archivist: migration %d: %w", v, err)
		}
	}
	return nil
}

func (s *SQLite) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }

// unavailable logs the real error and returns a generic one.
func (s *SQLite) unavailable(op string, err error) error {
	s.log.Error("archive store failure", "op", op, "error", err)
	return fmt.Errorf("%w: %s", ErrUnavailable, op)
}

const columns = `document_id, s3_key, bucket, document_type, file_name, sha256, status, score, passed, extracted_data, validation, error, created_at, updated_at`

// Archive implements Store.
func (s *SQLite) Archive(ctx context.Context, d *Document) (*Document, bool, error) {
	now := s.stamp()
	var passed any
	if d.Passed != nil {
		passed = *d.Passed
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO documents (`+columns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(document_id) DO NOTHING`,
		d.DocumentID, d.S3Key, d.Bucket, d.DocumentType, d.FileName, d.SHA256, d.Status, d.Score, passed,
		nullable(d.ExtractedData), nullable(d.Validation), d.Error, now, now)
	if err != nil {
		return nil, false, s.unavailable("archive", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, false, s.unavailable("archive", err)
	}
	stored, err := s.Get(ctx, d.DocumentID)
	if err != nil {
		return nil, false, err
	}
	return stored, n == 1, nil
}

func nullable(r RawJSON) any {
	if len(r) == 0 {
		return nil
	}
	return string(r)
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, id string) (*Document, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM documents WHERE document_id = ?`, id)
	d, err := scan(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.unavailable("get", err)
	}
	return d, nil
}

func scan(f func(...any) error) (*Document, error) {
	var d Document
	var score sql.NullInt64
	var passed sql.NullBool
	var extracted, validation sql.NullString
	if err := f(&d.DocumentID, &d.S3Key, &d.Bucket, &d.DocumentType, &d.FileName, &d.SHA256, &d.Status,
		&score, &passed, &extracted, &validation, &d.Error, &d.CreatedAt, &d.UpdatedAt); err != nil {
		return nil, err
	}
	if score.Valid {
		v := int(score.Int64)
		d.Score = &v
	}
	if passed.Valid {
		d.Passed = &passed.Bool
	}
	if extracted.Valid {
		d.ExtractedData = RawJSON(extracted.String)
	}
	if validation.Valid {
		d.Validation = RawJSON(validation.String)
	}
	return &d, nil
}

// UpdateStatus implements Store: one transaction, the update conditioned on
// the status read, so a concurrent change cannot be overwritten.
func (s *SQLite) UpdateStatus(ctx context.Context, id, status, reason string) (string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", s.unavailable("update", err)
	}
	defer tx.Rollback()
	var prev string
	err = tx.QueryRowContext(ctx, `SELECT status FROM documents WHERE document_id = ?`, id).Scan(&prev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", s.unavailable("update", err)
	}
	allowed := false
	for _, next := range transitions[prev] {
		allowed = allowed || next == status
	}
	if !allowed {
		return prev, fmt.Errorf("%w: %s -> %s", ErrInvalidTransition, prev, status)
	}
	now := s.stamp()
	res, err := tx.ExecContext(ctx, `UPDATE documents SET status = ?, updated_at = ? WHERE document_id = ? AND status = ?`, status, now, id, prev)
	if err != nil {
		return "", s.unavailable("update", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return "", fmt.Errorf("%w: status changed concurrently", ErrInvalidTransition)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO status_history(document_id, from_status, to_status, reason, changed_at) VALUES (?,?,?,?,?)`, id, prev, status, reason, now); err != nil {
		return "", s.unavailable("update", err)
	}
	if err := tx.Commit(); err != nil {
		return "", s.unavailable("update", err)
	}
	return prev, nil
}

// Search implements Store.
func (s *SQLite) Search(ctx context.Context, q Query) ([]Document, int, error) {
	where := []string{"1=1"}
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
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM documents WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, s.unavailable("search", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM documents WHERE `+cond+` ORDER BY created_at DESC, document_id LIMIT ? OFFSET ?`,
		append(args, q.Limit, q.Offset)...)
	if err != nil {
		return nil, 0, s.unavailable("search", err)
	}
	defer rows.Close()
	out := []Document{}
	for rows.Next() {
		d, err := scan(rows.Scan)
		if err != nil {
			return nil, 0, s.unavailable("search", err)
		}
		d.ExtractedData = nil // summaries only
		out = append(out, *d)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.unavailable("search", err)
	}
	return out, total, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Stats implements Store.
func (s *SQLite) Stats(ctx context.Context) (*Stats, error) {
	st := &Stats{ByStatus: map[string]int{}, ByType: map[string]int{}}
	var avg sql.NullFloat64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), AVG(score) FROM documents`).Scan(&st.Total, &avg); err != nil {
		return nil, s.unavailable("stats", err)
	}
	if avg.Valid {
		st.AverageScore = &avg.Float64
	}
	for col, m := range map[string]map[string]int{"status": st.ByStatus, "document_type": st.ByType} {
		rows, err := s.db.QueryContext(ctx, `SELECT `+col+`, COUNT(*) FROM documents GROUP BY `+col)
		if err != nil {
			return nil, s.unavailable("stats", err)
		}
		for rows.Next() {
			var k string
			var n int
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return nil, s.unavailable("stats", err)
			}
			m[k] = n
		}
		rows.Close()
	}
	return st, nil
}

// Ping implements Store.
func (s *SQLite) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1 FROM schema_migrations LIMIT 1`).Scan(&one); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Close implements Store.
func (s *SQLite) Close() error { return s.db.Close() }
