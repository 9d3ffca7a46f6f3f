package archivist

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"

	"github.com/ca-a2a/ca-a2a/agentsvc/skill"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// RawJSON is a JSON object kept as the caller sent it.
type RawJSON = json.RawMessage

// CodeInvalidTransition is the JSON-RPC code of a refused status change.
const CodeInvalidTransition = -32003

// Archivist offers the archive methods.
type Archivist struct{ store Store }

// New returns an Archivist on store.
func New(store Store) *Archivist { return &Archivist{store: store} }

// Methods returns the archivist's methods.
func (a *Archivist) Methods() []skill.Method {
	return []skill.Method{
		{Name: "archive_document", Description: "Archive a processed document; idempotent on document_id.", Handler: a.archive},
		{Name: "get_document", Description: "A document with its extracted data and validation: {document_id}.", Handler: a.get},
		{Name: "update_document_status", Description: "Change a document's status along the allowed transitions: {document_id, status, reason?}.", Handler: a.updateStatus},
		{Name: "search_documents", Description: "Find documents: {status?, document_type?, file_name?, limit?, offset?}.", Handler: a.search},
		{Name: "get_document_stats", Description: "Counts by status and type, average score.", Handler: a.stats},
	}
}

var documentID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

func checkID(id string) error {
	if !documentID.MatchString(id) {
		return jsonrpc.InvalidParams("document_id must be 1 to 128 letters, digits, '-' or '_'")
	}
	return nil
}

func isObject(r RawJSON) bool {
	if len(r) == 0 {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(r, &m) == nil && m != nil
}

type archiveParams struct {
	DocumentID    string  `json:"document_id"`
	S3Key         string  `json:"s3_key"`
	Bucket        string  `json:"bucket"`
	DocumentType  string  `json:"document_type"`
	FileName      string  `json:"file_name"`
	SHA256        string  `json:"sha256"`
	Status        string  `json:"status"`
	Error         string  `json:"error"`
	ExtractedData RawJSON `json:"extracted_data"`
	Validation    RawJSON `json:"validation"`
}

func (a *Archivist) archive(ctx context.Context, params json.RawMessage) (any, error) {
	var p archiveParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := checkID(p.DocumentID); err != nil {
		return nil, err
	}
	if p.S3Key == "" || len(p.S3Key) > 1024 {
		return nil, jsonrpc.InvalidParams("s3_key must be 1 to 1024 characters")
	}
	if !isObject(p.ExtractedData) || !isObject(p.Validation) {
		return nil, jsonrpc.InvalidParams("extracted_data and validation must be JSON objects")
	}
	var v struct {
		Score  *int  `json:"score"`
		Passed *bool `json:"passed"`
	}
	if len(p.Validation) > 0 {
		_ = json.Unmarshal(p.Validation, &v)
	}
	if p.Status == "" {
		p.Status = StatusRejected
		if v.Passed != nil && *v.Passed {
			p.Status = StatusArchived
		}
	}
	switch p.Status {
	case StatusArchived, StatusRejected:
		if p.DocumentType != "pdf" && p.DocumentType != "csv" {
			return nil, jsonrpc.InvalidParams("document_type must be pdf or csv")
		}
	case StatusFailed:
		if p.DocumentType != "" && p.DocumentType != "pdf" && p.DocumentType != "csv" {
			return nil, jsonrpc.InvalidParams("document_type must be pdf or csv")
		}
	default:
		return nil, jsonrpc.InvalidParams("status must be archived, rejected or failed")
	}
	doc := &Document{DocumentID: p.DocumentID, S3Key: p.S3Key, Bucket: p.Bucket, DocumentType: p.DocumentType,
		FileName: p.FileName, SHA256: p.SHA256, Status: p.Status, Score: v.Score, Passed: v.Passed,
		ExtractedData: p.ExtractedData, Validation: p.Validation, Error: p.Error}
	stored, created, err := a.store.Archive(ctx, doc)
	if err != nil {
		return nil, toRPC(err)
	}
	return map[string]any{"document_id": stored.DocumentID, "status": stored.Status, "created": created}, nil
}

func (a *Archivist) get(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		DocumentID string `json:"document_id"`
	}
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := checkID(p.DocumentID); err != nil {
		return nil, err
	}
	d, err := a.store.Get(ctx, p.DocumentID)
	if err != nil {
		return nil, toRPC(err)
	}
	return d, nil
}

func (a *Archivist) updateStatus(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		DocumentID string `json:"document_id"`
		Status     string `json:"status"`
		Reason     string `json:"reason"`
	}
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := checkID(p.DocumentID); err != nil {
		return nil, err
	}
	if !ValidStatus(p.Status) {
		return nil, jsonrpc.InvalidParams("unknown status %q", p.Status)
	}
	if len(p.Reason) > 1024 {
		return nil, jsonrpc.InvalidParams("reason longer than 1024 characters")
	}
	prev, err := a.store.UpdateStatus(ctx, p.DocumentID, p.Status, p.Reason)
	if err != nil {
		return nil, toRPC(err)
	}
	return map[string]string{"document_id": p.DocumentID, "status": p.Status, "previous_status": prev}, nil
}

func (a *Archivist) search(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		Status       string `json:"status"`
		DocumentType string `json:"document_type"`
		FileName     string `json:"file_name"`
		Limit        *int   `json:"limit"`
		Offset       int    `json:"offset"`
	}
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	q := Query{Status: p.Status, DocumentType: p.DocumentType, FileName: p.FileName, Limit: 50, Offset: p.Offset}
	if p.Limit != nil {
		q.Limit = *p.Limit
	}
	if q.Limit < 1 || q.Limit > 500 || q.Offset < 0 {
		return nil, jsonrpc.InvalidParams("limit must be 1..500 and offset >= 0")
	}
	if p.Status != "" && !ValidStatus(p.Status) {
		return nil, jsonrpc.InvalidParams("unknown status %q", p.Status)
	}
	if len(p.FileName) > 256 {
		return nil, jsonrpc.InvalidParams("file_name longer than 256 characters")
	}
	docs, total, err := a.store.Search(ctx, q)
	if err != nil {
		return nil, toRPC(err)
	}
	return map[string]any{"documents": docs, "total": total, "limit": q.Limit, "offset": q.Offset}, nil
}

func (a *Archivist) stats(ctx context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	st, err := a.store.Stats(ctx)
	if err != nil {
		return nil, toRPC(err)
	}
	return st, nil
}

func toRPC(err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return jsonrpc.Errorf(jsonrpc.CodeNotFound, "document not found")
	case errors.Is(err, ErrInvalidTransition):
		return jsonrpc.Errorf(CodeInvalidTransition, "%s", err.Error()[len("archivist: "):])
	default:
		return jsonrpc.Errorf(jsonrpc.CodeUnavailable, "archive store unavailable")
	}
}
