// Package archive is the archivist's store: where processed documents and
// their status history are kept. Store is the interface the archivist's
// methods use; SQLite and Postgres implement it, and Open picks one from
// Config (ARCHIVE_DSN, ARCHIVE_DB_PASSWORD, ARCHIVE_DB_CA_PATH;
// docs/configuration.md, Archive store).
//
// The SQLite store is an embedded database (modernc.org/sqlite, pure Go) in
// WAL mode, in the file of sqlite://PATH (sqlite://:memory: gives a private
// in-memory store for tests). The PostgreSQL store (pgx, pgxpool) serves any
// number of archivists on one database; beyond the loopback host it connects
// with sslmode=verify-full only.
//
// Both give the same answers to the same calls, which one contract test
// suite checks on each: the operations are written once (ops.go) over a
// small engine of each driver (its transactions, placeholders and the few
// clauses where the two dialects differ), each engine keeping its own
// connection handling, Ping and Close. Archive is one INSERT ... ON CONFLICT(document_id)
// DO NOTHING, the history row of a new document, and a read of the stored
// row, in one transaction, so concurrent redeliveries of the same document
// create exactly one row and one history entry. UpdateStatus reads (locking
// the row in PostgreSQL), checks the transition (agentapi.CanTransition),
// writes and records the change in status_history in one transaction.
//
// Each engine's schema is built by an ordered list of migrations recorded in
// schema_migrations, version for version the same schema in both, applied by
// one runner (migrate.go) under the engine's lock, so that archivists
// starting together apply each once; a database whose schema is newer than
// this code is refused rather than misread. The runner is ours rather than
// pressly/goose or golang-migrate: their locks cover PostgreSQL only (SQLite
// not across processes) and are taken around the whole run, apart from each
// step's transaction, and goose would need database/sql over the pgx pool.
// Here the lock is part of each step's transaction (pg_advisory_xact_lock,
// BEGIN IMMEDIATE), so a step, its version row and the lock commit or vanish
// together, a killed archivist included, in about sixty lines. A PostgreSQL
// database that cannot be reached at start-up is retried in the background
// (docs/operations.md, The archive database).
//
// Errors are classified (ErrNotFound, *TransitionError, ErrUnavailable);
// the storage error behind ErrUnavailable, with any path or SQL in it, is
// logged here and never returned.
package archive
