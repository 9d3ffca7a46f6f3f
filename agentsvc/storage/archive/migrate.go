package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// ErrNewerSchema: the database's schema version is above the last migration
// this program knows; it refuses to use the database rather than misread
// it.
var ErrNewerSchema = errors.New("archivist: archive schema is newer than this program")

// migrationTx is one engine's side of the migration runner: a transaction
// that holds the engine's migration lock from its start to its end, so that
// archivists starting together on one database apply each migration once.
// SQLite takes its write lock at BEGIN (BEGIN IMMEDIATE); PostgreSQL takes a
// transaction-level advisory lock (pg_advisory_xact_lock) first thing.
type migrationTx interface {
	// version creates the version table when missing and returns the
	// highest version applied (0: none).
	version(ctx context.Context) (int, error)
	// exec runs a migration (one or more statements).
	exec(ctx context.Context, sql string) error
	// record notes version as applied.
	record(ctx context.Context, version int) error
	commit(ctx context.Context) error
	// rollback ends the transaction unless it was committed.
	rollback(ctx context.Context)
}

// migrate applies the migrations steps[current:] in order, each in its own
// transaction with its version row: a migration that fails leaves neither
// its changes nor its version behind, and the next start carries on from
// there. engine only labels the log.
func migrate(ctx context.Context, log *slog.Logger, engine string, steps []string, begin func(context.Context) (migrationTx, error)) error {
	for {
		done, err := migrateOne(ctx, log, engine, steps, begin)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne reads the version and applies the next migration, if any, in
// one locked transaction.
func migrateOne(ctx context.Context, log *slog.Logger, engine string, steps []string, begin func(context.Context) (migrationTx, error)) (done bool, err error) {
	tx, err := begin(ctx)
	if err != nil {
		return false, fmt.Errorf("archivist: migrate: %w", err)
	}
	defer tx.rollback(ctx)
	current, err := tx.version(ctx)
	if err != nil {
		return false, fmt.Errorf("archivist: migrate: %w", err)
	}
	switch {
	case current > len(steps):
		return true, fmt.Errorf("%w (version %d, this program knows %d); refusing to use it", ErrNewerSchema, current, len(steps))
	case current == len(steps):
		return true, nil
	}
	next := current + 1
	if err := tx.exec(ctx, steps[current]); err != nil {
		return false, fmt.Errorf("archivist: migration %d: %w", next, err)
	}
	if err := tx.record(ctx, next); err != nil {
		return false, fmt.Errorf("archivist: migration %d: %w", next, err)
	}
	if err := tx.commit(ctx); err != nil {
		return false, fmt.Errorf("archivist: migration %d: %w", next, err)
	}
	log.Info("archive schema migrated", "engine", engine, "version", next)
	return false, nil
}
