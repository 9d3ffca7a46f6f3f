package archivist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"regexp"
	"strings"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Limits on what callers may store.
const (
	maxS3Key      = 1024 // S3's own limit, in bytes
	maxBucket     = 255
	maxFileName   = 1024
	maxReason     = 1024
	maxFileFilter = 256
	// DefaultLimit and MaxLimit bound a search_documents page.
	DefaultLimit = 50
	MaxLimit     = 500
)

// Archivist offers the archive methods on an archive.Store.
type Archivist struct {
	store archive.Store
	log   *slog.Logger
}

// Option configures an Archivist.
type Option func(*Archivist)

// WithLogger sets where the Archivist logs store failures that the store did
// not log itself (an archive.Store that returns raw errors; this
// repository's stores log their own). The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(a *Archivist) {
		if l != nil {
			a.log = l
		}
	}
}

// New returns an Archivist on store.
func New(store archive.Store, opts ...Option) *Archivist {
	a := &Archivist{store: store, log: slog.Default()}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Methods returns the archivist's JSON-RPC methods.
func (a *Archivist) Methods() []skill.Method {
	return []skill.Method{
		{Name: agentapi.MethodArchiveDocument, Description: "Archive a processed document, idempotent on document_id: {document_id, s3_key, document_type, extracted_data, validation, bucket?, file_name?, sha256?, status?, stage?, error?} -> {document_id, status, created}.", Handler: a.archive},
		{Name: agentapi.MethodGetDocument, Description: "A document with its extracted data and validation: {document_id}.", Handler: a.get},
		{Name: agentapi.MethodUpdateDocumentStatus, Description: "Move a document along the allowed status transitions: {document_id, status, reason?} -> {document_id, status, previous_status}.", Handler: a.updateStatus},
		{Name: agentapi.MethodSearchDocuments, Description: "Find documents, newest first: {status?, document_type?, file_name?, limit?, offset?} -> {documents, total, limit, offset}.", Handler: a.search},
		{Name: agentapi.MethodGetDocumentStats, Description: "Document counts by status and type, and the average score.", Handler: a.stats},
	}
}

var (
	documentIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

func checkID(id string) error {
	if !documentIDPattern.MatchString(id) {
		return jsonrpc.InvalidParams("document_id must be 1 to 128 letters, digits, '-' or '_'")
	}
	return nil
}

func validType(t string) bool { return t == agentapi.DocumentTypePDF || t == agentapi.DocumentTypeCSV }

// stages are where a pipeline run can fail (the orchestrator's stage names).
var stages = map[string]bool{agentapi.StageExtraction: true, agentapi.StageValidation: true, agentapi.StageArchive: true}

func (a *Archivist) archive(ctx context.Context, params json.RawMessage) (any, error) {
	var p agentapi.ArchiveParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	doc, err := document(&p)
	if err != nil {
		return nil, err
	}
	stored, created, err := a.store.Archive(ctx, doc)
	if err != nil {
		return nil, a.toRPC(ctx, agentapi.MethodArchiveDocument, err)
	}
	return agentapi.ArchiveResult{DocumentID: stored.DocumentID, Status: stored.Status, Created: created}, nil
}

// document validates p and builds the row to store.
func document(p *agentapi.ArchiveParams) (*agentapi.Document, error) {
	if err := checkID(p.DocumentID); err != nil {
		return nil, err
	}
	if p.S3Key == "" || len(p.S3Key) > maxS3Key {
		return nil, jsonrpc.InvalidParams("s3_key must be 1 to 1024 bytes")
	}
	if len(p.Bucket) > maxBucket {
		return nil, jsonrpc.InvalidParams("bucket longer than 255 bytes")
	}
	if len(p.FileName) > maxFileName {
		return nil, jsonrpc.InvalidParams("file_name longer than 1024 bytes")
	}
	if p.SHA256 != "" && !agentapi.ValidSHA256(p.SHA256) {
		return nil, jsonrpc.InvalidParams("sha256 must be 64 lower-case hex digits")
	}
	if err := noNUL(map[string]string{"s3_key": p.S3Key, "bucket": p.Bucket, "file_name": p.FileName, "error": p.Error}); err != nil {
		return nil, err
	}
	extracted, err := jsonObject("extracted_data", p.ExtractedData)
	if err != nil {
		return nil, err
	}
	validation, err := jsonObject("validation", p.Validation)
	if err != nil {
		return nil, err
	}
	var v struct {
		Score  *float64 `json:"score"`
		Passed *bool    `json:"passed"`
	}
	if validation != nil {
		if err := json.Unmarshal(validation, &v); err != nil {
			return nil, jsonrpc.InvalidParams("validation.score must be a number and validation.passed a boolean")
		}
	}
	var score *int
	if v.Score != nil {
		f := *v.Score
		if f != math.Trunc(f) || f < 0 || f > 100 {
			return nil, jsonrpc.InvalidParams("validation.score must be an integer from 0 to 100")
		}
		n := int(f)
		score = &n
	}

	status := p.Status
	if status == "" {
		status = agentapi.StatusRejected
		if v.Passed != nil && *v.Passed {
			status = agentapi.StatusArchived
		}
	}
	switch status {
	case agentapi.StatusArchived, agentapi.StatusRejected:
		if !validType(p.DocumentType) {
			return nil, jsonrpc.InvalidParams("document_type must be pdf or csv")
		}
		if p.Stage != "" || p.Error != "" {
			return nil, jsonrpc.InvalidParams("stage and error are only for failed documents")
		}
	case agentapi.StatusFailed:
		if p.DocumentType != "" && !validType(p.DocumentType) {
			return nil, jsonrpc.InvalidParams("document_type must be pdf, csv or empty")
		}
		if p.Stage != "" && !stages[p.Stage] {
			return nil, jsonrpc.InvalidParams("stage must be extraction, validation or archive")
		}
		if len(p.Error) > agentapi.MaxErrorBytes {
			return nil, jsonrpc.InvalidParams("error longer than %d bytes", agentapi.MaxErrorBytes)
		}
	default:
		return nil, jsonrpc.InvalidParams("status must be archived, rejected or failed")
	}
	return &agentapi.Document{
		DocumentSummary: agentapi.DocumentSummary{
			DocumentID: p.DocumentID, S3Key: p.S3Key, Bucket: p.Bucket, DocumentType: p.DocumentType,
			FileName: p.FileName, SHA256: p.SHA256, Status: status, Score: score, Passed: v.Passed,
			Validation: validation, Stage: p.Stage, Error: p.Error,
		},
		ExtractedData: extracted,
	}, nil
}

// noNUL refuses a NUL character ("\u0000" in JSON) in any of fields:
// PostgreSQL text cannot hold one, and both stores must give the same
// answer, so neither takes it.
func noNUL(fields map[string]string) error {
	for _, name := range []string{"s3_key", "bucket", "file_name", "error", "reason"} {
		if strings.ContainsRune(fields[name], 0) {
			return jsonrpc.InvalidParams("%s must not contain a NUL character", name)
		}
	}
	return nil
}

// jsonObject checks that raw, when present and not null, is a JSON object
// and returns it compacted (nil when absent).
func jsonObject(name string, raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, jsonrpc.InvalidParams("%s must be a JSON object", name)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, jsonrpc.InvalidParams("%s must be a JSON object", name)
	}
	return buf.Bytes(), nil
}

func (a *Archivist) get(ctx context.Context, params json.RawMessage) (any, error) {
	var p agentapi.DocumentIDParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := checkID(p.DocumentID); err != nil {
		return nil, err
	}
	d, err := a.store.Get(ctx, p.DocumentID)
	if err != nil {
		return nil, a.toRPC(ctx, agentapi.MethodGetDocument, err)
	}
	return d, nil
}

func (a *Archivist) updateStatus(ctx context.Context, params json.RawMessage) (any, error) {
	var p agentapi.UpdateStatusParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := checkID(p.DocumentID); err != nil {
		return nil, err
	}
	if !agentapi.ValidStatus(p.Status) {
		return nil, jsonrpc.InvalidParams("status must be archived, rejected or failed")
	}
	if len(p.Reason) > maxReason {
		return nil, jsonrpc.InvalidParams("reason longer than 1024 bytes")
	}
	if err := noNUL(map[string]string{"reason": p.Reason}); err != nil {
		return nil, err
	}
	prev, err := a.store.UpdateStatus(ctx, p.DocumentID, p.Status, p.Reason)
	if err != nil {
		return nil, a.toRPC(ctx, agentapi.MethodUpdateDocumentStatus, err)
	}
	return agentapi.UpdateStatusResult{DocumentID: p.DocumentID, Status: p.Status, PreviousStatus: prev}, nil
}

func (a *Archivist) search(ctx context.Context, params json.RawMessage) (any, error) {
	var p agentapi.SearchParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	q := archive.Query{Status: p.Status, DocumentType: p.DocumentType, FileName: p.FileName, Limit: DefaultLimit, Offset: p.Offset}
	if p.Limit != nil {
		q.Limit = *p.Limit
	}
	switch {
	case q.Limit < 1 || q.Limit > MaxLimit:
		return nil, jsonrpc.InvalidParams("limit must be from 1 to 500")
	case q.Offset < 0:
		return nil, jsonrpc.InvalidParams("offset must not be negative")
	case q.Status != "" && !agentapi.ValidStatus(q.Status):
		return nil, jsonrpc.InvalidParams("status must be archived, rejected or failed")
	case q.DocumentType != "" && !validType(q.DocumentType):
		return nil, jsonrpc.InvalidParams("document_type must be pdf or csv")
	case len(q.FileName) > maxFileFilter:
		return nil, jsonrpc.InvalidParams("file_name longer than 256 bytes")
	case strings.ContainsRune(q.FileName, 0):
		return nil, jsonrpc.InvalidParams("file_name must not contain a NUL character")
	}
	docs, total, err := a.store.Search(ctx, q)
	if err != nil {
		return nil, a.toRPC(ctx, agentapi.MethodSearchDocuments, err)
	}
	return agentapi.SearchResult{Documents: docs, Total: total, Limit: q.Limit, Offset: q.Offset}, nil
}

func (a *Archivist) stats(ctx context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	st, err := a.store.Stats(ctx)
	if err != nil {
		return nil, a.toRPC(ctx, agentapi.MethodGetDocumentStats, err)
	}
	return st, nil
}

// toRPC maps store errors to the codes of the contract. Only the transition
// message is passed on, and it holds nothing but status names. An error the
// store did not classify is logged here, since no one else will.
func (a *Archivist) toRPC(ctx context.Context, method string, err error) error {
	var te *archive.TransitionError
	switch {
	case errors.Is(err, archive.ErrNotFound):
		return jsonrpc.Errorf(agentapi.CodeNotFound, "document not found")
	case errors.As(err, &te):
		return &jsonrpc.Error{Code: agentapi.CodeInvalidTransition, Message: "status transition not allowed: " + te.From + " -> " + te.To,
			Data: map[string]any{"from": te.From, "to": te.To, "allowed": agentapi.AllowedFrom(te.From)}}
	case errors.Is(err, archive.ErrUnknownStatus):
		return jsonrpc.InvalidParams("status must be archived, rejected or failed")
	case errors.Is(err, archive.ErrUnavailable):
		// Logged by the store, with the cause.
		return jsonrpc.Errorf(agentapi.CodeUnavailable, "archive store unavailable")
	default:
		a.log.ErrorContext(ctx, "archive store failure", "method", method, "error", err)
		return jsonrpc.Errorf(agentapi.CodeUnavailable, "archive store unavailable")
	}
}
