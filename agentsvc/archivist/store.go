package archivist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors a Store returns; the methods map them to JSON-RPC codes.
var (
	// ErrNotFound: no document has the id asked for.
	ErrNotFound = errors.New("archivist: document not found")
	// ErrInvalidTransition: the status change is not in the state machine.
	// The concrete error is a *TransitionError.
	ErrInvalidTransition = errors.New("archivist: status transition not allowed")
	// ErrUnknownStatus: the status is not one of the package's statuses.
	ErrUnknownStatus = errors.New("archivist: unknown status")
	// ErrUnavailable: the storage failed; the details were logged.
	ErrUnavailable = errors.New("archivist: store unavailable")
)

// Statuses of a document.
const (
	StatusArchived = "archived"
	StatusRejected = "rejected"
	StatusFailed   = "failed"
)

// transitions is the state machine of the package documentation.
var transitions = map[string][]string{
	StatusFailed:   {StatusArchived, StatusRejected},
	StatusArchived: {StatusRejected},
	StatusRejected: {StatusArchived},
}

// ValidStatus reports whether s is a known status.
func ValidStatus(s string) bool {
	_, ok := transitions[s]
	return ok
}

// CanTransition reports whether a document in status from may move to to.
func CanTransition(from, to string) bool {
	return slices.Contains(transitions[from], to)
}

// TransitionError is a refused status change. It matches
// ErrInvalidTransition with errors.Is.
type TransitionError struct {
	From, To string
}

func (e *TransitionError) Error() string {
	allowed := "none"
	if next := transitions[e.From]; len(next) > 0 {
		allowed = strings.Join(next, ", ")
	}
	return fmt.Sprintf("archivist: status transition not allowed: %s -> %s (from %s: %s)", e.From, e.To, e.From, allowed)
}

// Is makes errors.Is(err, ErrInvalidTransition) hold.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// Summary is a document without its extracted data (search results).
type Summary struct {
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

// Document is one archived document, as get_document returns it: its
// summary and its extracted data.
type Document struct {
	Summary
	ExtractedData json.RawMessage `json:"extracted_data"`
}

// Query filters Search. Empty strings match everything; FileName matches a
// literal substring (% and _ are not wildcards).
type Query struct {
	Status       string
	DocumentType string
	FileName     string
	Limit        int
	Offset       int
}

// Stats summarises the store. AverageScore is nil when no document has a
// score. Documents without a type (failed early) count under "unknown".
type Stats struct {
	Total        int            `json:"total"`
	ByStatus     map[string]int `json:"by_status"`
	ByType       map[string]int `json:"by_type"`
	AverageScore *float64       `json:"average_score"`
}

// Store is where documents are kept. Implementations return ErrNotFound,
// a *TransitionError or an error wrapping ErrUnavailable, never raw storage
// errors.
type Store interface {
	// Archive inserts d unless a document with its id exists, and returns
	// the stored row and whether this call created it. It never changes an
	// existing row.
	Archive(ctx context.Context, d *Document) (stored *Document, created bool, err error)
	// Get returns the document with id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Document, error)
	// UpdateStatus moves a document to status along the state machine, in
	// one transaction, and returns the status it had.
	UpdateStatus(ctx context.Context, id, status, reason string) (previous string, err error)
	// Search returns one page of matching documents, newest first, and the
	// number of all matches.
	Search(ctx context.Context, q Query) (page []Summary, total int, err error)
	// Stats counts documents by status and type.
	Stats(ctx context.Context) (*Stats, error)
	// Ping reports whether the store answers (health checks).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}
