package agentapi

import "slices"

// Statuses of a document, as process_document reports them and the archive
// keeps them: archived (validation passed), rejected (validation failed) or
// failed (the pipeline could not finish; its stage and error say where and
// why).
const (
	StatusArchived = "archived"
	StatusRejected = "rejected"
	StatusFailed   = "failed"
)

// transitions are the status changes update_document_status allows:
//
//	failed   -> archived | rejected   the document was reprocessed
//	archived -> rejected              a reviewer overrules a passed validation
//	rejected -> archived              a reviewer accepts the document after manual review
//
// Nothing becomes failed after the fact: failed describes a pipeline run,
// not a judgement on the content.
var transitions = map[string][]string{
	StatusFailed:   {StatusArchived, StatusRejected},
	StatusArchived: {StatusRejected},
	StatusRejected: {StatusArchived},
}

// ValidStatus reports whether s is a document status.
func ValidStatus(s string) bool {
	_, ok := transitions[s]
	return ok
}

// CanTransition reports whether a document in status from may move to to.
func CanTransition(from, to string) bool {
	return slices.Contains(transitions[from], to)
}

// AllowedFrom returns the statuses a document in status from may move to
// (a fresh slice; empty for an unknown status).
func AllowedFrom(from string) []string {
	return append([]string{}, transitions[from]...)
}
