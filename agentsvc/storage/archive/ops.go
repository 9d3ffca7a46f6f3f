package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// The store's operations are written once, here, over an engine: the
// transactions of its driver (database/sql for SQLite, pgx for PostgreSQL)
// and the few places where the two SQL dialects differ. Queries are written
// with "?" placeholders; the PostgreSQL side numbers them ($1, $2, ...).

// querier runs queries: a pool, or a transaction.
type querier interface {
	queryRow(ctx context.Context, q string, args ...any) row
	query(ctx context.Context, q string, args ...any) (rows, error)
}

// txn is a transaction of either driver.
type txn interface {
	querier
	// exec runs a statement and returns the rows it touched.
	exec(ctx context.Context, q string, args ...any) (int64, error)
	commit(ctx context.Context) error
	// rollback ends the transaction unless it was committed.
	rollback(ctx context.Context)
}

// engine is one database's side of the operations.
type engine struct {
	log *slog.Logger
	db  querier
	// begin starts a read-write transaction, or with readOnly one that
	// reads a single snapshot.
	begin func(ctx context.Context, readOnly bool) (txn, error)
	// ready refuses an operation while the database cannot be used yet
	// (PostgreSQL before its first connection); nil: always ready.
	ready func(op string) error
	// noRows is the driver's error for a query that found no row.
	noRows error
	// now is the current time as the engine stores it.
	now func() any
	// lockRow ends UpdateStatus's SELECT: it locks the row until the
	// transaction ends where the engine has row locks (SQLite's
	// transactions hold the database's write lock from BEGIN instead).
	lockRow string
	// fileNameLike is Search's file-name condition, with one placeholder
	// for the LIKE pattern; foldPattern folds the escaped pattern as the
	// condition folds the column.
	fileNameLike string
	foldPattern  func(string) string
}

// ops are the Store operations both engines share; SQLite and Postgres
// embed them and add their own Ping and Close.
type ops struct{ e engine }

func (o *ops) unavailable(ctx context.Context, op, id string, err error) error {
	return storeFailure(ctx, o.e.log, op, id, err)
}

func (o *ops) notReady(op string) error {
	if o.e.ready == nil {
		return nil
	}
	return o.e.ready(op)
}

// historySQL records one status change.
const historySQL = `INSERT INTO status_history(document_id, from_status, to_status, reason, changed_at) VALUES (?,?,?,?,?)`

// Archive implements Store. The INSERT ... ON CONFLICT DO NOTHING, the
// history row of a new document and the read of the stored row share one
// transaction: there is no check-then-insert window, and the row returned
// is the one that won.
func (o *ops) Archive(ctx context.Context, d *agentapi.Document) (*agentapi.Document, bool, error) {
	if err := o.notReady("archive"); err != nil {
		return nil, false, err
	}
	fail := func(err error) (*agentapi.Document, bool, error) {
		return nil, false, o.unavailable(ctx, "archive", d.DocumentID, err)
	}
	now := o.e.now()
	tx, err := o.e.begin(ctx, false)
	if err != nil {
		return fail(err)
	}
	defer tx.rollback(ctx)
	n, err := tx.exec(ctx, `INSERT INTO documents (`+columns+`)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (document_id) DO NOTHING`,
		d.DocumentID, d.S3Key, d.Bucket, d.DocumentType, d.FileName, d.SHA256, d.Status,
		nullInt(d.Score), nullBool(d.Passed), nullJSON(d.ExtractedData), nullJSON(d.Validation),
		d.Stage, d.Error, now, now)
	if err != nil {
		return fail(err)
	}
	created := n == 1
	if created {
		if _, err := tx.exec(ctx, historySQL, d.DocumentID, "", d.Status, CreatedReason, now); err != nil {
			return fail(err)
		}
	}
	stored, err := o.get(ctx, tx, d.DocumentID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			// Inserted or found a moment ago in this transaction.
			return fail(errors.New("row missing after insert"))
		}
		return nil, false, err
	}
	if err := tx.commit(ctx); err != nil {
		return fail(err)
	}
	return stored, created, nil
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
func (o *ops) Get(ctx context.Context, id string) (*agentapi.Document, error) {
	if err := o.notReady("get"); err != nil {
		return nil, err
	}
	return o.get(ctx, o.e.db, id)
}

func (o *ops) get(ctx context.Context, q querier, id string) (*agentapi.Document, error) {
	d, err := scanDocument(q.queryRow(ctx, `SELECT `+columns+` FROM documents WHERE document_id = ?`, id))
	if errors.Is(err, o.e.noRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, o.unavailable(ctx, "get", id, err)
	}
	return d, nil
}

// UpdateStatus implements Store. The read, the conditioned update and the
// history row share one transaction, which holds the row (PostgreSQL: the
// SELECT locks it) or the database (SQLite: BEGIN IMMEDIATE) from the
// read on, so concurrent changes of one document queue and each sees the
// status the previous one left; the update is conditioned on it anyway.
func (o *ops) UpdateStatus(ctx context.Context, id, status, reason string) (string, error) {
	if !agentapi.ValidStatus(status) {
		return "", fmt.Errorf("%w %q", ErrUnknownStatus, status)
	}
	if err := o.notReady("update_status"); err != nil {
		return "", err
	}
	fail := func(err error) (string, error) { return "", o.unavailable(ctx, "update_status", id, err) }
	tx, err := o.e.begin(ctx, false)
	if err != nil {
		return fail(err)
	}
	defer tx.rollback(ctx)
	var prev string
	err = tx.queryRow(ctx, `SELECT status FROM documents WHERE document_id = ?`+o.e.lockRow, id).Scan(&prev)
	if errors.Is(err, o.e.noRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return fail(err)
	}
	if !agentapi.CanTransition(prev, status) {
		return prev, &TransitionError{From: prev, To: status}
	}
	now := o.e.now()
	n, err := tx.exec(ctx, `UPDATE documents SET status = ?, updated_at = ? WHERE document_id = ? AND status = ?`, status, now, id, prev)
	if err != nil {
		return fail(err)
	}
	if n != 1 {
		// Cannot happen while the transaction holds the row; refuse
		// rather than guess.
		return fail(fmt.Errorf("conditioned update touched %d rows", n))
	}
	if _, err := tx.exec(ctx, historySQL, id, prev, status, reason, now); err != nil {
		return fail(err)
	}
	if err := tx.commit(ctx); err != nil {
		return fail(err)
	}
	return prev, nil
}

// Search implements Store. The count and the page come from one read-only
// transaction, so they describe the same snapshot.
func (o *ops) Search(ctx context.Context, q Query) ([]agentapi.DocumentSummary, int, error) {
	if err := o.notReady("search"); err != nil {
		return nil, 0, err
	}
	fail := func(err error) ([]agentapi.DocumentSummary, int, error) {
		return nil, 0, o.unavailable(ctx, "search", "", err)
	}
	var where []string
	var args []any
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, q.Status)
	}
	if q.DocumentType != "" {
		where, args = append(where, "document_type = ?"), append(args, q.DocumentType)
	}
	if q.FileName != "" {
		where, args = append(where, o.e.fileNameLike), append(args, "%"+o.e.foldPattern(escapeLike(q.FileName))+"%")
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	tx, err := o.e.begin(ctx, true)
	if err != nil {
		return fail(err)
	}
	defer tx.rollback(ctx)
	var total int
	if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM documents`+cond, args...).Scan(&total); err != nil {
		return fail(err)
	}
	rs, err := tx.query(ctx, `SELECT `+summaryColumns+` FROM documents`+cond+
		` ORDER BY created_at DESC, document_id LIMIT ? OFFSET ?`, append(args, q.Limit, q.Offset)...)
	if err != nil {
		return fail(err)
	}
	defer rs.Close()
	page, err := scanSummaries(rs)
	if err != nil {
		return fail(err)
	}
	return page, total, nil
}

// Stats implements Store with one grouped query, hence one snapshot.
func (o *ops) Stats(ctx context.Context) (*agentapi.DocumentStats, error) {
	if err := o.notReady("stats"); err != nil {
		return nil, err
	}
	rs, err := o.e.db.query(ctx, `SELECT status, document_type, COUNT(*), COUNT(score), COALESCE(SUM(score), 0)
		FROM documents GROUP BY status, document_type`)
	if err != nil {
		return nil, o.unavailable(ctx, "stats", "", err)
	}
	defer rs.Close()
	st, err := aggregateStats(rs)
	if err != nil {
		return nil, o.unavailable(ctx, "stats", "", err)
	}
	return st, nil
}
