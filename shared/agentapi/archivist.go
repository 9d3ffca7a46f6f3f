package agentapi

import (
	"encoding/json"
	"regexp"
)

// MaxErrorBytes bounds ArchiveParams.Error, a failed document's cause: the
// archivist refuses a longer one, so callers cut theirs to it.
const MaxErrorBytes = 4096

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidSHA256 reports whether s is a document's content hash as the wire
// carries it: 64 lower-case hex digits.
func ValidSHA256(s string) bool { return sha256Hex.MatchString(s) }

// ArchiveParams are archive_document's params. ExtractedData and Validation
// are JSON objects, stored as given. Status defaults from
// Validation.passed (archived or rejected); Stage and Error are for a failed
// document only.
type ArchiveParams struct {
	DocumentID    string          `json:"document_id"`
	S3Key         string          `json:"s3_key"`
	Bucket        string          `json:"bucket,omitempty"`
	DocumentType  string          `json:"document_type"`
	FileName      string          `json:"file_name,omitempty"`
	SHA256        string          `json:"sha256,omitempty"`
	Status        string          `json:"status,omitempty"`
	ExtractedData json.RawMessage `json:"extracted_data,omitempty"`
	Validation    json.RawMessage `json:"validation,omitempty"`
	Stage         string          `json:"stage,omitempty"`
	Error         string          `json:"error,omitempty"`
}

// ArchiveResult is archive_document's result. Created is false when the
// document was already archived: the stored row is kept and its current
// status returned.
type ArchiveResult struct {
	DocumentID string `json:"document_id"`
	Status     string `json:"status"`
	Created    bool   `json:"created"`
}

// DocumentSummary is an archived document without its extracted data
// (search_documents).
type DocumentSummary struct {
	DocumentID   string          `json:"document_id"`
	S3Key        string          `json:"s3_key"`
	Bucket       string          `json:"bucket"`
	DocumentType string          `json:"document_type"`
	FileName     string          `json:"file_name"`
	SHA256       string          `json:"sha256"`
	Status       string          `json:"status"`
	Score        *int            `json:"score"`
	Passed       *bool           `json:"passed"`
	Validation   json.RawMessage `json:"validation"`
	Stage        string          `json:"stage,omitempty"`
	Error        string          `json:"error,omitempty"`
	CreatedAt    string          `json:"created_at"`
	UpdatedAt    string          `json:"updated_at"`
}

// Document is get_document's result: the summary and the extracted data.
type Document struct {
	DocumentSummary
	ExtractedData json.RawMessage `json:"extracted_data"`
}

// UpdateStatusParams are update_document_status's params.
type UpdateStatusParams struct {
	DocumentID string `json:"document_id"`
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
}

// UpdateStatusResult is update_document_status's result.
type UpdateStatusResult struct {
	DocumentID     string `json:"document_id"`
	Status         string `json:"status"`
	PreviousStatus string `json:"previous_status"`
}

// SearchParams are search_documents's params; every filter is optional.
// FileName matches a literal substring.
type SearchParams struct {
	Status       string `json:"status,omitempty"`
	DocumentType string `json:"document_type,omitempty"`
	FileName     string `json:"file_name,omitempty"`
	// Limit is 1 to 500 (default 50).
	Limit  *int `json:"limit,omitempty"`
	Offset int  `json:"offset,omitempty"`
}

// SearchResult is search_documents's result, newest first.
type SearchResult struct {
	Documents []DocumentSummary `json:"documents"`
	Total     int               `json:"total"`
	Limit     int               `json:"limit"`
	Offset    int               `json:"offset"`
}

// DocumentStats is get_document_stats's result. AverageScore is nil when no
// document has a score; documents without a type count under "unknown".
type DocumentStats struct {
	Total        int            `json:"total"`
	ByStatus     map[string]int `json:"by_status"`
	ByType       map[string]int `json:"by_type"`
	AverageScore *float64       `json:"average_score"`
}
