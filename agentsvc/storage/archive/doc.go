// Package archive is the archivist's store: where processed documents and
// their status history are kept. Store is the interface the archivist's
// methods use; SQLite implements it.
//
// The SQLite store is an embedded database (modernc.org/sqlite, pure Go) in
// WAL mode, opened from ARCHIVE_DSN = sqlite://PATH with OpenDSN
// (sqlite://:memory: gives a private in-memory store for tests). Its schema
// is built by an ordered list of migrations recorded in schema_migrations; a
// database whose schema is newer than this code is refused rather than
// misread.
//
// Archive is one INSERT ... ON CONFLICT(document_id) DO NOTHING followed by
// a read of the row, in one transaction, so concurrent redeliveries of the
// same document create exactly one row. UpdateStatus reads, checks the
// transition (agentapi.CanTransition) and writes in one transaction, and
// records the change in status_history.
//
// Errors are classified (ErrNotFound, *TransitionError, ErrUnavailable);
// the SQL error behind ErrUnavailable, with any path in it, is logged here
// and never returned.
package archive
