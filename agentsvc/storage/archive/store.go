package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// Errors a Store returns; the methods map them to JSON-RPC codes.
var (
	// ErrNotFound: no document has the id asked for.
	ErrNotFound = errors.New("archivist: document not found")
	// ErrInvalidTransition: the status change is not in the state machine.
	// The concrete error is a *TransitionError.
	ErrInvalidTransition = errors.New("archivist: status transition not allowed")
	// ErrUnknownStatus: the status is not a document status (agentapi.ValidStatus).
	ErrUnknownStatus = errors.New("archivist: unknown status")
	// ErrUnavailable: the storage failed; the details were logged.
	ErrUnavailable = errors.New("archivist: store unavailable")
)

// TransitionError is a refused status change. It matches
// ErrInvalidTransition with errors.Is.
type TransitionError struct {
	From, To string
}

func (e *TransitionError) Error() string {
	allowed := "none"
	if next := agentapi.AllowedFrom(e.From); len(next) > 0 {
		allowed = strings.Join(next, ", ")
	}
	return fmt.Sprintf("archivist: status transition not allowed: %s -> %s (from %s: %s)", e.From, e.To, e.From, allowed)
}

// Is makes errors.Is(err, ErrInvalidTransition) hold.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// Query filters Search. Empty strings match everything; FileName matches a
// literal substring (% and _ are not wildcards).
type Query struct {
	Status       string
	DocumentType string
	FileName     string
	Limit        int
	Offset       int
}

// Store is where documents are kept. Implementations return ErrNotFound,
// a *TransitionError or an error wrapping ErrUnavailable, never raw storage
// errors.
type Store interface {
	// Archive inserts d unless a document with its id exists, and returns
	// the stored row and whether this call created it. It never changes an
	// existing row.
	Archive(ctx context.Context, d *agentapi.Document) (stored *agentapi.Document, created bool, err error)
	// Get returns the document with id, or ErrNotFound.
	Get(ctx context.Context, id string) (*agentapi.Document, error)
	// UpdateStatus moves a document to status along the state machine
	// (agentapi.CanTransition), in
	// one transaction, and returns the status it had.
	UpdateStatus(ctx context.Context, id, status, reason string) (previous string, err error)
	// Search returns one page of matching documents, newest first, and the
	// number of all matches.
	Search(ctx context.Context, q Query) (page []agentapi.DocumentSummary, total int, err error)
	// Stats counts documents by status and type.
	Stats(ctx context.Context) (*agentapi.DocumentStats, error)
	// Ping reports whether the store answers (health checks).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// CreatedReason is the reason of the history row that archive_document
// writes for a new document (from status "" to its first status).
const CreatedReason = "archived"

// storeFailure logs a storage error with its cause and returns a generic
// one wrapping ErrUnavailable: the cause (paths, SQL, server messages) stays
// in the log.
func storeFailure(ctx context.Context, log *slog.Logger, op, id string, err error) error {
	level := slog.LevelError
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		level = slog.LevelWarn // the caller gave up; not a storage fault
	}
	attrs := []any{"op", op, "error", err}
	if id != "" {
		attrs = append(attrs, "document_id", id)
	}
	log.Log(ctx, level, "archive store failure", attrs...)
	return fmt.Errorf("%w (%s)", ErrUnavailable, op)
}

// escapeLike makes s a literal LIKE pattern under ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
