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
	ops
	pool *pgxpool.Pool
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
	s := &Postgres{pool: pool, now: time.Now, cancel: cancel, done: make(chan struct{}),
		retryBase: retryBase, retryMax: retryMax}
	s.e = engine{
		log: logger,
		db:  pgQuerier{pool},
		begin: func(ctx context.Context, readOnly bool) (txn, error) {
			opts := pgx.TxOptions{}
			if readOnly {
				// One snapshot for every statement, not one each.
				opts = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
			}
			tx, err := pool.BeginTx(ctx, opts)
			if err != nil {
				return nil, err
			}
			return pgTx{tx}, nil
		},
		ready:   s.readyErr,
		noRows:  pgx.ErrNoRows,
		now:     func() any { return s.now().UTC() },
		lockRow: " FOR UPDATE",
		// translate() folds ASCII letters only, as SQLite's LIKE does,
		// whatever the database's locale; E'\\' is one backslash whatever
		// standard_conforming_strings says.
		fileNameLike: `translate(file_name, '` + asciiUpper + `', '` + asciiLower + `') LIKE ? ESCAPE E'\\'`,
		foldPattern:  asciiFold,
	}

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
	return migrate(ctx, s.e.log, EnginePostgres, postgresMigrations, postgresBegin(s.pool, s.now))
}

// postgresVersionTable is schema_migrations in PostgreSQL's types.
const postgresVersionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL)`

// postgresBegin starts migration transactions on pool, each holding the
// archive's advisory lock from its first statement. The lock is released
// by the transaction's end, also when the connection dies: a crashed
// archivist cannot leave it held.
func postgresBegin(pool *pgxpool.Pool, now func() time.Time) func(context.Context) (*migration, error) {
	return func(ctx context.Context) (*migration, error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		m := &migration{tx: pgTx{tx}, table: postgresVersionTable, now: func() any { return now().UTC() }}
		if _, err := m.tx.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, migrationLockKey); err != nil {
			m.tx.rollback(ctx)
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
			s.e.log.Info("archive database ready", "attempt", attempt)
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
		s.e.log.Log(ctx, level, "archive database unavailable; retrying", "attempt", attempt, "next_in", delay.String(), "error", err)
	}
}

func (s *Postgres) setLastErr(err error) {
	msg := err.Error()
	s.lastErr.Store(&msg)
}

// readyErr is the answer of every call before the first successful
// connection and migration. It is not logged per call: the retry loop logs.
func (s *Postgres) readyErr(op string) error {
	if s.ready.Load() {
		return nil
	}
	return fmt.Errorf("%w (%s: database not reachable yet)", ErrUnavailable, op)
}

// pgQuerier runs the operations' queries on a pool or a transaction,
// numbering their placeholders.
type pgQuerier struct {
	q interface {
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (p pgQuerier) queryRow(ctx context.Context, q string, args ...any) row {
	return p.q.QueryRow(ctx, numbered(q), args...)
}

func (p pgQuerier) query(ctx context.Context, q string, args ...any) (rows, error) {
	return p.q.Query(ctx, numbered(q), args...)
}

// pgTx is a pgx transaction as the operations use it.
type pgTx struct{ tx pgx.Tx }

func (t pgTx) queryRow(ctx context.Context, q string, args ...any) row {
	return pgQuerier{t.tx}.queryRow(ctx, q, args...)
}

func (t pgTx) query(ctx context.Context, q string, args ...any) (rows, error) {
	return pgQuerier{t.tx}.query(ctx, q, args...)
}

func (t pgTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	if len(args) > 0 {
		q = numbered(q)
	}
	tag, err := t.tx.Exec(ctx, q, args...)
	return tag.RowsAffected(), err
}

func (t pgTx) commit(ctx context.Context) error { return t.tx.Commit(ctx) }

func (t pgTx) rollback(ctx context.Context) {
	// A fresh context: the transaction must end even when ctx has (a
	// cancelled call must not leave its connection in a transaction).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = t.tx.Rollback(rctx)
}

// numbered turns the operations' "?" placeholders into PostgreSQL's $1,
// $2, ... Their SQL has no "?" anywhere else (no literal, no operator).
func numbered(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
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
