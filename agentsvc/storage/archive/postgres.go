package archive

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// postgresMigrations are the twins of migrations (SQLite), version for
// version. Differences: timestamps are timestamptz (the same instants,
// formatted alike on the way out); document_id collates as "C" so that ties
// order byte-wise as in SQLite whatever the database's locale; the JSON
// objects are text, stored as given, as in SQLite (json would re-validate
// them with another parser, jsonb would reorder them).
var postgresMigrations = []string{
	// 1: documents.
	`CREATE TABLE documents (
		document_id    TEXT COLLATE "C" PRIMARY KEY,
		s3_key         TEXT NOT NULL,
		bucket         TEXT NOT NULL DEFAULT '',
		document_type  TEXT NOT NULL DEFAULT '',
		file_name      TEXT NOT NULL DEFAULT '',
		sha256         TEXT NOT NULL DEFAULT '',
		status         TEXT NOT NULL,
		score          INTEGER,
		passed         BOOLEAN,
		extracted_data TEXT,
		validation     TEXT,
		error          TEXT NOT NULL DEFAULT '',
		created_at     TIMESTAMPTZ NOT NULL,
		updated_at     TIMESTAMPTZ NOT NULL
	);
	CREATE INDEX documents_status ON documents(status);
	CREATE INDEX documents_type ON documents(document_type);
	CREATE INDEX documents_created ON documents(created_at DESC, document_id);`,
	// 2: the audit trail of status changes.
	`CREATE TABLE status_history (
		id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		document_id TEXT COLLATE "C" NOT NULL REFERENCES documents(document_id),
		from_status TEXT NOT NULL,
		to_status   TEXT NOT NULL,
		reason      TEXT NOT NULL DEFAULT '',
		changed_at  TIMESTAMPTZ NOT NULL
	);`,
	// 3: where a failed document stopped; history by document.
	`ALTER TABLE documents ADD COLUMN stage TEXT NOT NULL DEFAULT '';
	CREATE INDEX status_history_document ON status_history(document_id);`,
}

// migrationLockKey is the pg_advisory_xact_lock key of the archive's
// migrations ("ca2aarch"): every archivist on a database takes it before it
// reads the schema version.
const migrationLockKey int64 = 0x6361326161726368

// Retry of an unreachable database: the delay doubles from retryBase up to
// retryMax, with jitter so that several archivists do not retry in step;
// each attempt is bounded by attemptTimeout, the first (during Open) by
// firstAttemptTimeout. There is no last attempt: the store keeps trying
// until it is closed, so that the database coming back is enough.
var (
	retryBase           = 250 * time.Millisecond
	retryMax            = 5 * time.Second
	attemptTimeout      = 60 * time.Second
	firstAttemptTimeout = 10 * time.Second
	// connectTimeout applies when the DSN sets no connect_timeout.
	connectTimeout = 5 * time.Second
)

// Postgres is the Store on a PostgreSQL database (pgxpool), shared by any
// number of archivists.
type Postgres struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	now  func() time.Time

	// retryBase and retryMax are the package's, read once at Open.
	retryBase, retryMax time.Duration

	ready   atomic.Bool
	lastErr atomic.Pointer[string] // why it is not ready, for Ping
	cancel  context.CancelFunc     // ends the retry loop
	done    chan struct{}          // closed when the retry loop ended
	close   sync.Once
}

var _ Store = (*Postgres)(nil)

// openPostgres builds the pool and tries once to connect and migrate; see
// Open.
func openPostgres(ctx context.Context, c Config, logger *slog.Logger) (*Postgres, error) {
	t, err := parsePostgres(c)
	if err != nil {
		return nil, err
	}
	if c.CAPath != "" {
		if err := checkCAFile(c.CAPath); err != nil {
			return nil, err
		}
	}
	cfg, err := pgxpool.ParseConfig(t.connString)
	if err != nil {
		// The connection string holds no password; pgconn's message
		// quotes it, redacted, and its cause (a CA file it could not read).
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			err = pe.Unwrap()
		}
		return nil, fmt.Errorf("archivist: ARCHIVE_DSN: %w", err)
	}
	if t.password != "" {
		cfg.ConnConfig.Password = t.password
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	// A database restart leaves broken connections in the pool; pgxpool
	// pings a connection idle for over a second before handing it out, so
	// at most a call already using one fails (-32002) and the next gets a
	// fresh connection.
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, fmt.Errorf("archivist: archive database pool: %w", err)
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Postgres{pool: pool, log: logger, now: time.Now, cancel: cancel, done: make(chan struct{}),
		retryBase: retryBase, retryMax: retryMax}

	first, cancelFirst := context.WithTimeout(ctx, firstAttemptTimeout)
	err = s.prepare(first)
	cancelFirst()
	switch {
	case err == nil:
		s.ready.Store(true)
		close(s.done)
		logger.Info("archive database ready", "archive", c)
	case errors.Is(err, ErrNewerSchema):
		cancel()
		close(s.done)
		pool.Close()
		return nil, err
	default:
		s.setLastErr(err)
		logger.Warn("archive database unavailable; retrying in the background", "archive", c, "error", err)
		go s.retry(loopCtx)
	}
	return s, nil
}

// checkCAFile reads ARCHIVE_DB_CA_PATH: a readable file with at least one
// PEM certificate, so that a wrong path stops start-up instead of failing
// every connection.
func checkCAFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("archivist: ARCHIVE_DB_CA_PATH: %w", err)
	}
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("archivist: ARCHIVE_DB_CA_PATH %s: %w", path, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("archivist: ARCHIVE_DB_CA_PATH %s holds no PEM certificate", path)
	}
	return nil
}

// prepare connects and brings the schema up to date.
func (s *Postgres) prepare(ctx context.Context) error {
	return migrate(ctx, s.log, EnginePostgres, postgresMigrations, postgresBegin(s.pool, s.now))
}

// postgresBegin starts migration transactions on pool, each holding the
// archive's advisory lock from its first statement. The lock is released
// by the transaction's end, also when the connection dies: a crashed
// archivist cannot leave it held.
func postgresBegin(pool *pgxpool.Pool, now func() time.Time) func(context.Context) (migrationTx, error) {
	return func(ctx context.Context) (migrationTx, error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		m := &pgMigration{tx: tx, now: now}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
			m.rollback(ctx)
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		return m, nil
	}
}

// retry repeats prepare with backoff until it succeeds or the store closes.
func (s *Postgres) retry(ctx context.Context) {
	defer close(s.done)
	delay := s.retryBase
	for attempt := 2; ; attempt++ {
		wait := delay/2 + rand.N(delay/2+1) // equal jitter: never less than half
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := s.prepare(actx)
		cancel()
		if err == nil {
			s.ready.Store(true)
			s.log.Info("archive database ready", "attempt", attempt)
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.setLastErr(err)
		delay = min(2*delay, s.retryMax)
		level := slog.LevelWarn
		if errors.Is(err, ErrNewerSchema) {
			level = slog.LevelError // needs an operator, not patience
		}
		s.log.Log(ctx, level, "archive database unavailable; retrying", "attempt", attempt, "next_in", delay.String(), "error", err)
	}
}

func (s *Postgres) setLastErr(err error) {
	msg := err.Error()
	s.lastErr.Store(&msg)
}

// notReady is the answer of every call before the first successful
// connection and migration. It is not logged per call: the retry loop logs.
func (s *Postgres) notReady(op string) error {
	if s.ready.Load() {
		return nil
	}
	return fmt.Errorf("%w (%s: database not reachable yet)", ErrUnavailable, op)
}

func (s *Postgres) unavailable(ctx context.Context, op, id string, err error) error {
	return storeFailure(ctx, s.log, op, id, err)
}

// pgMigration is a migrationTx on a transaction holding the advisory lock.
type pgMigration struct {
	tx  pgx.Tx
	now func() time.Time
}

func (m *pgMigration) version(ctx context.Context) (int, error) {
	if _, err := m.tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return 0, fmt.Errorf("schema_migrations: %w", err)
	}
	var v int
	err := m.tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (m *pgMigration) exec(ctx context.Context, q string) error {
	_, err := m.tx.Exec(ctx, q)
	return err
}

func (m *pgMigration) record(ctx context.Context, version int) error {
	_, err := m.tx.Exec(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES ($1, $2)`, version, m.now().UTC())
	return err
}

func (m *pgMigration) commit(ctx context.Context) error { return m.tx.Commit(ctx) }

func (m *pgMigration) rollback(ctx context.Context) {
	// A fresh context: the transaction must end even when ctx has.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = m.tx.Rollback(rctx)
}

// rollback ends tx unless it was committed (pgx: a no-op then).
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// Archive implements Store. The INSERT ... ON CONFLICT DO NOTHING, the
// history row of a new document and the read of the stored row share one
// transaction. Under READ COMMITTED, a concurrent INSERT of the same id
// waits for the first one's transaction and then does nothing; the SELECT
// that follows is a new statement and sees the row that won.
func (s *Postgres) Archive(ctx context.Context, d *agentapi.Document) (*agentapi.Document, bool, error) {
	if err := s.notReady("archive"); err != nil {
		return nil, false, err
	}
	now := s.now().UTC()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, s.unavailable(ctx, "archive", d.DocumentID, err)
	}
	defer rollback(ctx, tx)
	tag, err := tx.Exec(ctx, `INSERT INTO documents (`+columns+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)
		ON CONFLICT (document_id) DO NOTHING`,
		d.DocumentID, d.S3Key, d.Bucket, d.DocumentType, d.FileName, d.SHA256, d.Status,
		d.Score, d.Passed, nullJSON(d.ExtractedData), nullJSON(d.Validation),
		d.Stage, d.Error, now, now)
	if err != nil {
		return nil, false, s.unavailable(ctx, "archive", d.DocumentID, err)
	}
	created := tag.RowsAffected() == 1
	if created {
		if _, err := tx.Exec(ctx, `INSERT INTO status_history(document_id, from_status, to_status, reason, changed_at) VALUES ($1,$2,$3,$4,$5)`,
			d.DocumentID, "", d.Status, CreatedReason, now); err != nil {
			return nil, false, s.unavailable(ctx, "archive", d.DocumentID, err)
		}
	}
	stored, err := s.get(ctx, tx, d.DocumentID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, false, s.unavailable(ctx, "archive", d.DocumentID, errors.New("row missing after insert"))
		}
		return nil, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, s.unavailable(ctx, "archive", d.DocumentID, err)
	}
	return stored, created, nil
}

// Get implements Store.
func (s *Postgres) Get(ctx context.Context, id string) (*agentapi.Document, error) {
	if err := s.notReady("get"); err != nil {
		return nil, err
	}
	return s.get(ctx, s.pool, id)
}

// pgQuerier is what get needs of a pool or a transaction.
type pgQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Postgres) get(ctx context.Context, q pgQuerier, id string) (*agentapi.Document, error) {
	d, err := scanDocument(q.QueryRow(ctx, `SELECT `+columns+` FROM documents WHERE document_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.unavailable(ctx, "get", id, err)
	}
	return d, nil
}

// UpdateStatus implements Store. SELECT ... FOR UPDATE locks the row for
// the transaction, so concurrent changes of one document queue and each
// sees the status the previous one left; the update is conditioned on it
// anyway, and the history row shares the transaction.
func (s *Postgres) UpdateStatus(ctx context.Context, id, status, reason string) (string, error) {
	if !agentapi.ValidStatus(status) {
		return "", fmt.Errorf("%w %q", ErrUnknownStatus, status)
	}
	if err := s.notReady("update_status"); err != nil {
		return "", err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	defer rollback(ctx, tx)
	var prev string
	err = tx.QueryRow(ctx, `SELECT status FROM documents WHERE document_id = $1 FOR UPDATE`, id).Scan(&prev)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	if !agentapi.CanTransition(prev, status) {
		return prev, &TransitionError{From: prev, To: status}
	}
	now := s.now().UTC()
	tag, err := tx.Exec(ctx, `UPDATE documents SET status = $1, updated_at = $2 WHERE document_id = $3 AND status = $4`,
		status, now, id, prev)
	if err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	if n := tag.RowsAffected(); n != 1 {
		// Cannot happen under FOR UPDATE; refuse rather than guess.
		return "", s.unavailable(ctx, "update_status", id, fmt.Errorf("conditioned update touched %d rows", n))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO status_history(document_id, from_status, to_status, reason, changed_at) VALUES ($1,$2,$3,$4,$5)`,
		id, prev, status, reason, now); err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", s.unavailable(ctx, "update_status", id, err)
	}
	return prev, nil
}

// asciiUpper and asciiLower fold ASCII letters only, which is what SQLite's
// LIKE does: translate() in the query and asciiFold on the pattern give
// PostgreSQL the same matching whatever the database's locale.
const (
	asciiUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	asciiLower = "abcdefghijklmnopqrstuvwxyz"
)

func asciiFold(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Search implements Store. The count and the page come from one read-only
// REPEATABLE READ transaction, so they describe the same snapshot.
func (s *Postgres) Search(ctx context.Context, q Query) ([]agentapi.DocumentSummary, int, error) {
	if err := s.notReady("search"); err != nil {
		return nil, 0, err
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Status != "" {
		where = append(where, "status = "+arg(q.Status))
	}
	if q.DocumentType != "" {
		where = append(where, "document_type = "+arg(q.DocumentType))
	}
	if q.FileName != "" {
		// E'\\' is one backslash whatever standard_conforming_strings says.
		where = append(where, `translate(file_name, '`+asciiUpper+`', '`+asciiLower+`') LIKE `+
			arg("%"+escapeLike(asciiFold(q.FileName))+"%")+` ESCAPE E'\\'`)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, s.unavailable(ctx, "search", "", err)
	}
	defer rollback(ctx, tx)
	var total int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM documents`+cond, args...).Scan(&total); err != nil {
		return nil, 0, s.unavailable(ctx, "search", "", err)
	}
	limit, offset := arg(q.Limit), arg(q.Offset)
	rows, err := tx.Query(ctx, `SELECT `+summaryColumns+` FROM documents`+cond+
		` ORDER BY created_at DESC, document_id LIMIT `+limit+` OFFSET `+offset, args...)
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
func (s *Postgres) Stats(ctx context.Context) (*agentapi.DocumentStats, error) {
	if err := s.notReady("stats"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT status, document_type, COUNT(*), COUNT(score), COALESCE(SUM(score), 0)
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

// Ping implements Store: ErrUnavailable until the database was reached and
// migrated, then a query on the schema table. The error is for the log.
func (s *Postgres) Ping(ctx context.Context) error {
	if !s.ready.Load() {
		why := "not connected yet"
		if p := s.lastErr.Load(); p != nil {
			why = *p
		}
		return fmt.Errorf("%w: %s", ErrUnavailable, why)
	}
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Close implements Store: it ends the retry loop, waits for it, and closes
// the pool. Calls after Close answer ErrUnavailable.
func (s *Postgres) Close() error {
	s.close.Do(func() {
		s.cancel()
		<-s.done
		s.pool.Close()
	})
	return nil
}
