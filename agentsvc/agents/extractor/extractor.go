// Package extractor reads a document from a documents.Store and returns its
// content: the text of each page of a PDF (github.com/ledongthuc/pdf), or the
// header and rows of a CSV (encoding/csv, delimiter detected among ',', ';'
// and tab). The type comes from the key's extension and must agree with the
// content.
//
// Every byte of a document is hostile (docs/threat-model.md, Hostile
// documents). The agent never parses one: each parse runs in a sandbox
// worker process (internal/sandbox) under memory, CPU, time and output
// limits, and writes the final JSON of extracted_data, which the agent
// passes on as it is. The agent keeps the JSON-RPC side: the key check, the
// store read (admitted to the worker pool first, so the documents held at
// once are bounded), the hash, and the mapping of every outcome to an answer
// (docs/contract.md, Extractor):
//
//	malformed document, or a worker killed by a limit   -32602 "document could not be parsed: <cause>"  permanent
//	extracted data over the hop limit                   -32012                                         permanent
//	no worker free before the request's deadline        -32002 "extractor busy"                        transient
//	the request's own deadline ended the parse          -32002                                         transient
//	the time limit, with less than MinCPUShare of its
//	  fair CPU share (the worker was starved of CPU)    -32002 "extractor overloaded"                  transient
//	the worker could not be set up                      -32603                                         internal
package extractor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"path"
	"runtime"
	"strings"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/documents"
	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Options configure an Extractor. The zero value is usable.
type Options struct {
	// Logger receives the causes that callers do not see (a store
	// failure, a worker's standard error). Nil discards them.
	Logger *slog.Logger
}

// MinCPUShare is the share of its fair share of the CPU that a worker
// killed by the time limit must have used for the document to be blamed
// (permanent). The fair share is a whole CPU, or the agent's CPUs
// (GOMAXPROCS, which follows the task's limit) divided among
// EXTRACT_WORKERS when they are fewer. Below it the worker was starved of
// CPU by something else, which says nothing about the document: transient,
// the Lambda retries it. Measured against the fair share, not a whole CPU,
// so that uploading as many looping documents as there are workers does
// not make every one of them look starved (and retried until the
// dead-letter queue).
const MinCPUShare = 0.5

// Extractor offers extract_document and list_supported_formats.
type Extractor struct {
	store documents.Store
	pool  *sandbox.Pool
	log   *slog.Logger
	// maxBytes bounds a document: the pool's MaxDocumentBytes.
	maxBytes int64
	// minCPUShare is MinCPUShare of the fair share, as a share of the
	// wall clock (tests change it).
	minCPUShare float64
}

// New returns an Extractor reading from store and parsing in pool's
// workers. The pool's MaxOutputBytes should be
// agentapi.MaxExtractedDataBytes, so that what it returns can travel on.
func New(store documents.Store, pool *sandbox.Pool, opts Options) *Extractor {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := pool.Config()
	fair := min(1, float64(runtime.GOMAXPROCS(0))/float64(max(cfg.Workers, 1)))
	return &Extractor{store: store, pool: pool, log: log, maxBytes: cfg.MaxDocumentBytes, minCPUShare: MinCPUShare * fair}
}

// Stats are the worker pool's counters (/health check extract_workers).
func (e *Extractor) Stats() sandbox.Stats { return e.pool.Stats() }

// Methods returns the extractor's methods.
func (e *Extractor) Methods() []skill.Method {
	return []skill.Method{
		{Name: agentapi.MethodExtractDocument, Description: "Extract the text of each page of a PDF, or the header and rows of a CSV: {s3_key}.", Handler: e.extractDocument},
		{Name: agentapi.MethodListSupportedFormats, Description: "The document formats this extractor reads and its size limit.", Handler: e.listFormats},
	}
}

var (
	errInvalidKey  = jsonrpc.InvalidParams("s3_key is not a valid object key")
	errUnsupported = jsonrpc.InvalidParams("unsupported document type: want .pdf or .csv")
	errBusy        = jsonrpc.Errorf(agentapi.CodeUnavailable, "extractor busy: try again later")
	errOverloaded  = jsonrpc.Errorf(agentapi.CodeUnavailable, "extractor overloaded: the parse did not get the CPU to finish; try again later")
	errInternal    = jsonrpc.Errorf(jsonrpc.CodeInternalError, "internal error")
)

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
	// A slot, and room in the pool's byte budget, before the document is
	// read: documents held in memory at once are bounded by count and by
	// bytes (EXTRACT_WORKERS × EXTRACT_MAX_BYTES).
	adm, err := e.pool.Admit(ctx, e.maxBytes)
	if err != nil {
		e.log.WarnContext(ctx, "extractor: no worker free before the deadline", "s3_key", p.S3Key, "workers", e.pool.Config().Workers)
		return nil, errBusy
	}
	defer adm.Release()
	obj, err := e.store.Get(ctx, p.S3Key, e.maxBytes)
	if err != nil {
		return nil, e.storeError(ctx, p.S3Key, err)
	}
	sum := sha256.Sum256(obj.Data)
	doc := agentapi.ExtractFailure{DocumentType: kind, FileName: path.Base(p.S3Key), FileSize: int64(len(obj.Data)), SHA256: hex.EncodeToString(sum[:])}
	data, err := adm.Run(ctx, kind, obj.Data)
	if err != nil {
		return nil, e.runError(ctx, p.S3Key, doc, err)
	}
	// The worker writes JSON; it is checked, not re-encoded. A worker
	// whose parser was subverted could write anything.
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		e.log.ErrorContext(ctx, "extractor: worker wrote data that is not a JSON object", "s3_key", p.S3Key, "bytes", len(data))
		return nil, permanent(jsonrpc.InvalidParams("document could not be parsed: malformed worker output"), doc)
	}
	return &agentapi.ExtractResult[json.RawMessage]{DocumentType: doc.DocumentType, FileName: doc.FileName,
		FileSize: doc.FileSize, SHA256: doc.SHA256, ExtractedData: data}, nil
}

// runError maps the outcome of a worker to the answer: the one place where
// the extractor decides permanent (-32602, -32012) against transient
// (-32002). The worker's standard error goes to the log only: it is derived
// from the document.
func (e *Extractor) runError(ctx context.Context, key string, doc agentapi.ExtractFailure, err error) error {
	var re *sandbox.RunError
	if !errors.As(err, &re) {
		if ctx.Err() != nil {
			// The caller left or its deadline passed before the worker
			// started: nothing is known about the document.
			return jsonrpc.Errorf(agentapi.CodeUnavailable, "extraction did not finish before the request's deadline")
		}
		e.log.ErrorContext(ctx, "extractor: worker not run", "s3_key", key, "error", err.Error())
		return errInternal
	}
	attrs := []any{"s3_key", key, "size", doc.FileSize, "outcome", re.Cause(), "exit", re.Exit,
		"cpu_ms", re.CPUTime.Milliseconds(), "wall_ms", re.Wall.Milliseconds()}
	if re.Stderr != "" {
		attrs = append(attrs, "stderr", truncate(re.Stderr, maxLoggedStderr))
	}
	switch {
	case errors.Is(err, sandbox.ErrSetup):
		e.log.ErrorContext(ctx, "extractor: worker could not be set up", append(attrs, "error", err.Error())...)
		return errInternal
	case errors.Is(err, sandbox.ErrTimeLimit) && errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		// The request's deadline came before EXTRACT_TIMEOUT: the
		// document did not get its full time, so this says nothing about
		// it. Transient: a retry with a longer deadline may succeed.
		e.log.WarnContext(ctx, "extractor: parse cut short by the request's deadline", attrs...)
		return jsonrpc.Errorf(agentapi.CodeUnavailable, "extraction did not finish before the request's deadline")
	case errors.Is(err, sandbox.ErrTimeLimit) && re.CPUTime.Seconds() < e.minCPUShare*re.Wall.Seconds():
		// Out of time without having used it: the other workers had
		// the CPU. A document that loops gets the same answer only when
		// the task is this overloaded; its retries end in the
		// dead-letter queue.
		e.log.WarnContext(ctx, "extractor: parse starved of CPU before its time limit", attrs...)
		return errOverloaded
	case errors.Is(err, sandbox.ErrOutputTooLarge):
		e.log.InfoContext(ctx, "extractor: extracted data over the hop limit", attrs...)
		return permanent(jsonrpc.Errorf(agentapi.CodeTooLarge, "extracted data larger than %d bytes: over the 1 MiB hop limit", agentapi.MaxExtractedDataBytes), doc)
	case errors.Is(err, sandbox.ErrMalformedDocument):
		e.log.InfoContext(ctx, "extractor: document refused", attrs...)
	default:
		// A limit (time, memory, CPU), a crash or malformed output: the
		// document did it, and will do it again.
		e.log.WarnContext(ctx, "extractor: worker killed", attrs...)
	}
	return permanent(jsonrpc.InvalidParams("document could not be parsed: %s", re.Cause()), doc)
}

// maxLoggedStderr bounds the worker's standard error in one log line.
const maxLoggedStderr = 2 << 10

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// permanent attaches what the orchestrator needs to archive the failed
// document under the id a successful extraction would have had.
func permanent(e *jsonrpc.Error, doc agentapi.ExtractFailure) *jsonrpc.Error {
	e.Data = doc
	return e
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

// storeError chooses the code a caller sees. The store's own message may
// hold a path or a bucket error: it is logged, not passed on.
func (e *Extractor) storeError(ctx context.Context, key string, err error) error {
	switch {
	case errors.Is(err, documents.ErrInvalidKey):
		return errInvalidKey
	case errors.Is(err, documents.ErrNotFound):
		return jsonrpc.Errorf(agentapi.CodeNotFound, "document not found")
	case errors.Is(err, documents.ErrTooLarge):
		return jsonrpc.InvalidParams("document larger than the %d-byte limit", e.maxBytes)
	default:
		e.log.WarnContext(ctx, "extractor: document store failed", "s3_key", key, "error", err.Error())
		return jsonrpc.Errorf(agentapi.CodeUnavailable, "document store unavailable")
	}
}

func (e *Extractor) listFormats(_ context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	return agentapi.FormatsResult{Formats: []agentapi.Format{
		{Type: agentapi.DocumentTypePDF, Extensions: []string{".pdf"}, MIMEType: "application/pdf", MaxBytes: e.maxBytes},
		{Type: agentapi.DocumentTypeCSV, Extensions: []string{".csv"}, MIMEType: "text/csv", MaxBytes: e.maxBytes},
	}}, nil
}
