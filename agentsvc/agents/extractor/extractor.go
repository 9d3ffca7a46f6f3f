// Package extractor reads a document from a documents.Store and returns its
// content: the text of each page of a PDF (github.com/ledongthuc/pdf), or the
// header and rows of a CSV (encoding/csv, delimiter detected among ',', ';'
// and tab). The type comes from the key's extension and must agree with the
// content.
package extractor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/documents"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// DefaultTimeout bounds one extract_document call when Options sets none.
const DefaultTimeout = 60 * time.Second

// Options configure an Extractor. The zero value is usable.
type Options struct {
	// MaxBytes bounds a document (default documents.DefaultMaxBytes, 20 MiB).
	MaxBytes int64
	// Timeout bounds one extract_document call, reading included
	// (default DefaultTimeout); the caller's deadline applies too.
	Timeout time.Duration
	// PDFWorkers bounds the PDFs parsed at once (default GOMAXPROCS).
	PDFWorkers int
	// Logger receives the causes that callers do not see (a store
	// failure, a parse abandoned at the deadline). Nil discards them.
	Logger *slog.Logger
}

// Extractor offers extract_document and list_supported_formats.
type Extractor struct {
	store documents.Store
	opts  Options
	// pdfSlots holds one token per PDF being parsed. The PDF library is
	// not known to end on every input: a parse that outlives its request is
	// left to finish, and keeps its slot, so at most PDFWorkers such
	// parses can run; beyond that PDFs are refused as unavailable rather
	// than piling up.
	pdfSlots chan struct{}
}

// New returns an Extractor reading from store.
func New(store documents.Store, opts Options) *Extractor {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = documents.DefaultMaxBytes
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.PDFWorkers <= 0 {
		opts.PDFWorkers = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Extractor{store: store, opts: opts, pdfSlots: make(chan struct{}, opts.PDFWorkers)}
}

// Workers reports the PDF parse slots in use and their number (metrics).
func (e *Extractor) Workers() (busy, total int) { return len(e.pdfSlots), cap(e.pdfSlots) }

// Methods returns the extractor's methods.
func (e *Extractor) Methods() []skill.Method {
	return []skill.Method{
		{Name: agentapi.MethodExtractDocument, Description: "Extract the text of each page of a PDF, or the header and rows of a CSV: {s3_key}.", Handler: e.extractDocument},
		{Name: agentapi.MethodListSupportedFormats, Description: "The document formats this extractor reads and its size limit.", Handler: e.listFormats},
	}
}

func (e *Extractor) extractDocument(ctx context.Context, params json.RawMessage) (any, error) {
	var p agentapi.ExtractParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	// Both checks come before the store is touched: a bad key or an
	// unsupported type reads nothing.
	if err := documents.CheckKey(p.S3Key); err != nil {
		return nil, errInvalidKey
	}
	kind := TypeOf(p.S3Key)
	if kind == "" {
		return nil, errUnsupported
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	obj, err := e.store.Get(ctx, p.S3Key, e.opts.MaxBytes)
	if err != nil {
		return nil, e.mapStoreError(ctx, p.S3Key, err)
	}
	if kind != agentapi.DocumentTypePDF {
		return Extract(ctx, p.S3Key, obj.Data)
	}
	return e.extractPDFBounded(ctx, p.S3Key, obj.Data)
}

// parsePDF is Extract; tests replace it with a parse that does not end.
var parsePDF = Extract

// extractPDFBounded runs Extract in a worker slot and waits for it at most
// until ctx ends.
func (e *Extractor) extractPDFBounded(ctx context.Context, key string, data []byte) (*agentapi.ExtractResult[any], error) {
	select {
	case e.pdfSlots <- struct{}{}:
	case <-ctx.Done():
		e.opts.Logger.WarnContext(ctx, "extractor: no PDF worker free before the deadline", "s3_key", key, "workers", cap(e.pdfSlots))
		return nil, errBusy
	}
	type outcome struct {
		res *agentapi.ExtractResult[any]
		err error
	}
	done := make(chan outcome, 1)
	parse := parsePDF
	go func() {
		defer func() { <-e.pdfSlots }()
		res, err := parse(ctx, key, data)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
		// Extract stops between pages once ctx ends; one still running
		// is stuck inside the library.
		e.opts.Logger.ErrorContext(ctx, "extractor: PDF parse still running at the deadline; its worker stays busy until it ends", "s3_key", key, "size", len(data))
		return nil, jsonrpc.Errorf(agentapi.CodeUnavailable, "extraction did not finish in time")
	}
}

var (
	errInvalidKey  = jsonrpc.InvalidParams("s3_key is not a valid object key")
	errUnsupported = jsonrpc.InvalidParams("unsupported document type: want .pdf or .csv")
	errEmpty       = jsonrpc.InvalidParams("empty document")
	errBusy        = jsonrpc.Errorf(agentapi.CodeUnavailable, "extractor busy: try again later")
)

// Extract extracts data, stored under key, by the type the key's extension
// names. Every error is a *jsonrpc.Error.
func Extract(ctx context.Context, key string, data []byte) (*agentapi.ExtractResult[any], error) {
	kind := TypeOf(key)
	if kind == "" {
		return nil, errUnsupported
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errEmpty
	}
	sum := sha256.Sum256(data)
	res := &agentapi.ExtractResult[any]{DocumentType: kind, FileName: path.Base(key), FileSize: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	var err error
	switch kind {
	case agentapi.DocumentTypePDF:
		res.ExtractedData, err = extractPDF(ctx, data)
	case agentapi.DocumentTypeCSV:
		res.ExtractedData, err = ExtractCSV(data)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// TypeOf returns the document type key's extension names (case-insensitive),
// or "" when it names none this package reads.
func TypeOf(key string) string {
	switch strings.ToLower(path.Ext(key)) {
	case ".pdf":
		return agentapi.DocumentTypePDF
	case ".csv":
		return agentapi.DocumentTypeCSV
	}
	return ""
}

// mapStoreError chooses the code a caller sees. The store's own message
// may hold a path or a bucket error: it is logged, not passed on.
func (e *Extractor) mapStoreError(ctx context.Context, key string, err error) error {
	switch {
	case errors.Is(err, documents.ErrInvalidKey):
		return errInvalidKey
	case errors.Is(err, documents.ErrNotFound):
		return jsonrpc.Errorf(agentapi.CodeNotFound, "document not found")
	case errors.Is(err, documents.ErrTooLarge):
		return jsonrpc.InvalidParams("document larger than the %d-byte limit", e.opts.MaxBytes)
	default:
		e.opts.Logger.WarnContext(ctx, "extractor: document store failed", "s3_key", key, "error", err.Error())
		return jsonrpc.Errorf(agentapi.CodeUnavailable, "document store unavailable")
	}
}

func (e *Extractor) listFormats(_ context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	return agentapi.FormatsResult{Formats: []agentapi.Format{
		{Type: agentapi.DocumentTypePDF, Extensions: []string{".pdf"}, MIMEType: "application/pdf", MaxBytes: e.opts.MaxBytes},
		{Type: agentapi.DocumentTypeCSV, Extensions: []string{".csv"}, MIMEType: "text/csv", MaxBytes: e.opts.MaxBytes},
	}}, nil
}
