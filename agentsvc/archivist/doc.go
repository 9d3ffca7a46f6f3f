// Package archivist keeps processed documents and offers them over JSON-RPC
// (archive_document, get_document, update_document_status,
// search_documents, get_document_stats).
//
// The store is an embedded SQLite database (modernc.org/sqlite, pure Go) in
// WAL mode, opened from ARCHIVE_DSN = sqlite://PATH with OpenDSN
// (sqlite://:memory: gives a private in-memory store for tests). Its schema
// is built by an ordered list of migrations recorded in schema_migrations; a
// database whose schema is newer than this code is refused rather than
// misread.
//
// # Statuses
//
// A document is archived (validation passed), rejected (validation failed)
// or failed (the pipeline could not finish: stage and error say where and
// why). Only these changes are allowed through update_document_status:
//
//	failed   -> archived | rejected   the document was reprocessed
//	archived -> rejected              a reviewer overrules a passed validation
//	rejected -> archived              a reviewer accepts the document after manual review
//
// Nothing becomes failed after the fact: failed describes a pipeline run,
// not a judgement on the content. A change to the current status is refused
// too, so a repeated call cannot be mistaken for a change. Every accepted
// change is recorded in status_history with its reason. A refused change
// answers agentapi.CodeInvalidTransition (-32003); an unknown status -32602.
//
// # Idempotence
//
// archive_document is idempotent on document_id: one INSERT ... ON
// CONFLICT(document_id) DO NOTHING followed by a read of the row, in one
// transaction, so concurrent redeliveries of the same document create
// exactly one row and exactly one caller sees created:true. A later call never overwrites the
// stored row; it answers with the stored status.
//
// # Errors
//
// Storage failures reach the client as -32002 "archive store unavailable";
// the SQL error, with any path in it, goes to the log only (the store's
// logger, or the Archivist's, WithLogger, for errors a Store did not
// classify).
package archivist
