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

// migration is the transaction of one migration step. It holds the
// engine's migration lock from its start to its end, so that archivists
// starting together on one database apply each migration once: SQLite
// takes its write lock at BEGIN (BEGIN IMMEDIATE), PostgreSQL a
// transaction-level advisory lock (pg_advisory_xact_lock) first thing.
type migration struct {
	tx txn
	// table creates schema_migrations in the engine's types when missing.
	table string
	now   func() any
}

// version creates the version table when missing and returns the highest
// version applied (0: none).
func (m *migration) version(ctx context.Context) (int, error) {
	if _, err := m.tx.exec(ctx, m.table); err != nil {
		return 0, fmt.Errorf("schema_migrations: %w", err)
	}
	var v int
	err := m.tx.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// record notes version as applied.
func (m *migration) record(ctx context.Context, version int) error {
	_, err := m.tx.exec(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, version, m.now())
	return err
}

// migrate applies the migrations steps[current:] in order, each in its own
// transaction with its version row: a migration that fails leaves neither
// its changes nor its version behind, and the next start carries on from
// there. engine only labels the log.
func migrate(ctx context.Context, log *slog.Logger, engine string, steps []string, begin func(context.Context) (*migration, error)) error {
	for {
		done, err := migrateOne(ctx, log, engine, steps, begin)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne reads the version and applies the next migration, if any, in
// one locked transaction.
func migrateOne(ctx context.Context, log *slog.Logger, engine string, steps []string, begin func(context.Context) (*migration, error)) (done bool, err error) {
	m, err := begin(ctx)
	if err != nil {
		return false, fmt.Errorf("archivist: migrate: %w", err)
	}
	defer m.tx.rollback(ctx)
	current, err := m.version(ctx)
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
	if _, err := m.tx.exec(ctx, steps[current]); err != nil {
		return false, fmt.Errorf("archivist: migration %d: %w", next, err)
	}
	if err := m.record(ctx, next); err != nil {
		return false, fmt.Errorf("archivist: migration %d: %w", next, err)
	}
	if err := m.tx.commit(ctx); err != nil {
		return false, fmt.Errorf("archivist: migration %d: %w", next, err)
	}
	log.Info("archive schema migrated", "engine", engine, "version", next)
	return false, nil
}
