// Package archivist offers the archive over JSON-RPC: archive_document,
// get_document, update_document_status, search_documents and
// get_document_stats (docs/contract.md, Archivist). It validates what
// callers send and maps the store's errors to the contract's codes; the
// storage itself is an archive.Store (agentsvc/storage/archive).
//
// # Statuses
//
// A document is archived (validation passed), rejected (validation failed)
// or failed (the pipeline could not finish: stage and error say where and
// why). update_document_status moves a document only along
// agentapi.CanTransition:
//
//	failed   -> archived | rejected   the document was reprocessed
//	archived -> rejected              a reviewer overrules a passed validation
//	rejected -> archived              a reviewer accepts the document after manual review
//
// Nothing becomes failed after the fact: failed describes a pipeline run,
// not a judgement on the content. A change to the current status is refused
// too, so a repeated call cannot be mistaken for a change. Every accepted
// change is recorded with its reason. A refused change answers
// agentapi.CodeInvalidTransition (-32003); an unknown status -32602.
//
// # Idempotence
//
// archive_document is idempotent on document_id: concurrent redeliveries of
// the same document create exactly one row and exactly one caller sees
// created:true. A later call never overwrites the stored row; it answers
// with the stored status.
//
// # Errors
//
// Storage failures reach the client as -32002 "archive store unavailable";
// the cause, with any path in it, goes to the log only (the store's logger,
// or the Archivist's, WithLogger, for errors a Store did not classify).
package archivist
