// Package orchestrator runs the document pipeline: extract -> validate ->
// archive, each stage a call to another agent over mTLS with the
// orchestrator's own certificate-bound token.
//
// A document's id is derived from its bucket, key and content hash, so a
// redelivered event finds the document already archived and archives
// nothing twice. A failing stage never hangs the call: every peer call is
// bounded by the request deadline, and the result names the stage that
// failed and the code the peer returned. Nothing is archived for a document
// whose pipeline failed.
package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/skill"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Caller calls another agent; *a2a.Client satisfies it.
type Caller interface {
	Call(ctx context.Context, agent, method string, params, result any) error
}

// Lister lists document keys under a prefix (process_batch).
type Lister interface {
	List(ctx context.Context, prefix string, limit int) ([]string, error)
}

// Options configure an Orchestrator.
type Options struct {
	// Bucket is the bucket the documents store serves ("" for a local
	// directory). A process_document naming another bucket is refused.
	Bucket string
	// BatchConcurrency bounds process_batch's parallel pipelines (default 4).
	BatchConcurrency int
	// BatchLimit bounds how many documents one process_batch handles (default 500).
	BatchLimit int
	// Peers names the agents discover_agents reports.
	Peers []string
}

// Orchestrator offers the pipeline methods.
type Orchestrator struct {
	peers Caller
	docs  Lister
	opts  Options
	now   func() time.Time
}

// New returns an Orchestrator calling peers through c and listing documents
// with docs.
func New(c Caller, docs Lister, opts Options) *Orchestrator {
	if opts.BatchConcurrency <= 0 {
		opts.BatchConcurrency = 4
	}
	if opts.BatchLimit <= 0 {
		opts.BatchLimit = 500
	}
	if opts.Peers == nil {
		opts.Peers = []string{"extractor", "validator", "archivist"}
	}
	return &Orchestrator{peers: c, docs: docs, opts: opts, now: time.Now}
}

// Methods returns the orchestrator's methods.
func (o *Orchestrator) Methods() []skill.Method {
	return []skill.Method{
		{Name: "process_document", Description: "Extract, validate and archive one document: {s3_key, bucket?}.", Handler: o.processDocument},
		{Name: "process_batch", Description: "Process every document under a prefix: {prefix?, file_extension?}.", Handler: o.processBatch},
		{Name: "get_document_status", Description: "Status of an archived document: {document_id}.", Handler: o.getDocumentStatus},
		{Name: "discover_agents", Description: "The peer agents with their skills and health.", Handler: o.discoverAgents},
	}
}

// Statuses of a processed document.
const (
	StatusArchived = "archived"
	StatusRejected = "rejected"
	StatusFailed   = "failed"
)

// ProcessParams are process_document's params.
type ProcessParams struct {
	S3Key  string `json:"s3_key"`
	Bucket string `json:"bucket,omitempty"`
}

// Result is process_document's result.
type Result struct {
	DocumentID string `json:"document_id"`
	S3Key      string `json:"s3_key"`
	Bucket     string `json:"bucket,omitempty"`
	Status     string `json:"status"`
	Stages     Stages `json:"stages"`
	DurationMS int64  `json:"duration_ms"`
}

// Stages reports each stage; a stage that did not run is absent.
type Stages struct {
	Extraction *Stage `json:"extraction,omitempty"`
	Validation *Stage `json:"validation,omitempty"`
	Archive    *Stage `json:"archive,omitempty"`
}

// Stage is the outcome of one stage.
type Stage struct {
	Status string `json:"status"` // ok, failed or skipped
	// Code and Message are the JSON-RPC error the peer returned.
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Details summarises a successful stage.
	Details map[string]any `json:"details,omitempty"`
}

// extraction is the part of the extractor's answer the pipeline reads;
// extracted_data is passed on untouched.
type extraction struct {
	DocumentType  string          `json:"document_type"`
	FileName      string          `json:"file_name"`
	FileSize      int64           `json:"file_size"`
	SHA256        string          `json:"sha256"`
	ExtractedData json.RawMessage `json:"extracted_data"`
}

type validation struct {
	Score  int             `json:"score"`
	Passed bool            `json:"passed"`
	Issues json.RawMessage `json:"issues"`
}

type archived struct {
	DocumentID string `json:"document_id"`
	Status     string `json:"status"`
	Created    bool   `json:"created"`
}

func (o *Orchestrator) processDocument(ctx context.Context, params json.RawMessage) (any, error) {
	var p ProcessParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := o.checkKey(&p); err != nil {
		return nil, err
	}
	return o.Process(ctx, p), nil
}

func (o *Orchestrator) checkKey(p *ProcessParams) error {
	if p.S3Key == "" || len(p.S3Key) > 1024 {
		return jsonrpc.InvalidParams("s3_key must be 1 to 1024 characters")
	}
	if o.opts.Bucket != "" {
		if p.Bucket == "" {
			p.Bucket = o.opts.Bucket
		} else if p.Bucket != o.opts.Bucket {
			return jsonrpc.InvalidParams("bucket %q is not served by this deployment", p.Bucket)
		}
	}
	return nil
}

// Process runs the pipeline for one document. It never returns an error:
// a failure is a result with status failed and the failing stage named.
func (o *Orchestrator) Process(ctx context.Context, p ProcessParams) Result {
	start := o.now()
	res := Result{S3Key: p.S3Key, Bucket: p.Bucket, DocumentID: DocumentID(p.Bucket, p.S3Key, "")}
	finish := func(status string) Result {
		res.Status = status
		res.DurationMS = o.now().Sub(start).Milliseconds()
		return res
	}

	var ex extraction
	if err := o.peers.Call(ctx, "extractor", "extract_document", map[string]string{"s3_key": p.S3Key}, &ex); err != nil {
		res.Stages.Extraction = failed(err)
		return finish(StatusFailed)
	}
	res.DocumentID = DocumentID(p.Bucket, p.S3Key, ex.SHA256)
	res.Stages.Extraction = &Stage{Status: "ok", Details: map[string]any{
		"document_type": ex.DocumentType, "file_name": ex.FileName, "file_size": ex.FileSize, "sha256": ex.SHA256}}

	// A redelivered event: the same content under the same key is already
	// archived; report it without running the pipeline again.
	var existing struct {
		Status string `json:"status"`
	}
	err := o.peers.Call(ctx, "archivist", "get_document", map[string]string{"document_id": res.DocumentID}, &existing)
	switch {
	case err == nil:
		res.Stages.Validation = &Stage{Status: "skipped", Message: "already archived"}
		res.Stages.Archive = &Stage{Status: "ok", Details: map[string]any{"created": false}}
		return finish(existing.Status)
	case jsonrpc.CodeOf(err) != jsonrpc.CodeNotFound:
		res.Stages.Archive = failed(err)
		return finish(StatusFailed)
	}

	var val validation
	if err := o.peers.Call(ctx, "validator", "validate_document", map[string]any{
		"document_type": ex.DocumentType, "extracted_data": ex.ExtractedData}, &val); err != nil {
		res.Stages.Validation = failed(err)
		return finish(StatusFailed)
	}
	res.Stages.Validation = &Stage{Status: "ok", Details: map[string]any{"score": val.Score, "passed": val.Passed}}

	status := StatusRejected
	if val.Passed {
		status = StatusArchived
	}
	var arc archived
	if err := o.peers.Call(ctx, "archivist", "archive_document", map[string]any{
		"document_id": res.DocumentID, "s3_key": p.S3Key, "bucket": p.Bucket, "file_name": ex.FileName,
		"sha256": ex.SHA256, "document_type": ex.DocumentType, "status": status,
		"extracted_data": ex.ExtractedData, "validation": val,
	}, &arc); err != nil {
		res.Stages.Archive = failed(err)
		return finish(StatusFailed)
	}
	res.Stages.Archive = &Stage{Status: "ok", Details: map[string]any{"created": arc.Created}}
	return finish(arc.Status)
}

func failed(err error) *Stage {
	var rpc *jsonrpc.Error
	if errors.As(err, &rpc) {
		return &Stage{Status: "failed", Code: rpc.Code, Message: rpc.Message}
	}
	return &Stage{Status: "failed", Code: jsonrpc.CodeUnavailable, Message: "peer unavailable"}
}

// DocumentID derives a document's id from where it lives and what it holds:
// the same object (bucket, key, content hash) always gets the same id. An
// empty hash (extraction failed) still gives a stable id for the key.
func DocumentID(bucket, key, contentSHA256 string) string {
	h := sha256.New()
	for _, part := range []string{bucket, key, contentSHA256} {
		// Length-prefixed, so that no two different triples hash alike.
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	return "doc-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// BatchParams are process_batch's params.
type BatchParams struct {
	Prefix        string `json:"prefix,omitempty"`
	FileExtension string `json:"file_extension,omitempty"`
}

// BatchResult is process_batch's result.
type BatchResult struct {
	Total     int      `json:"total"`
	Archived  int      `json:"archived"`
	Rejected  int      `json:"rejected"`
	Failed    int      `json:"failed"`
	Truncated bool     `json:"truncated"`
	Documents []Result `json:"documents"`
}

func (o *Orchestrator) processBatch(ctx context.Context, params json.RawMessage) (any, error) {
	var p BatchParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	ext := strings.ToLower(strings.TrimPrefix(p.FileExtension, "."))
	if len(ext) > 16 || strings.ContainsAny(ext, "/\\") {
		return nil, jsonrpc.InvalidParams("file_extension is not an extension")
	}
	keys, err := o.docs.List(ctx, p.Prefix, o.opts.BatchLimit+1)
	if err != nil {
		return nil, jsonrpc.Errorf(jsonrpc.CodeUnavailable, "cannot list documents")
	}
	out := BatchResult{Documents: []Result{}}
	if len(keys) > o.opts.BatchLimit {
		keys, out.Truncated = keys[:o.opts.BatchLimit], true
	}
	var selected []string
	for _, k := range keys {
		if ext == "" || strings.EqualFold(strings.TrimPrefix(path.Ext(k), "."), ext) {
			selected = append(selected, k)
		}
	}
	results := make([]Result, len(selected))
	sem := make(chan struct{}, o.opts.BatchConcurrency)
	var wg sync.WaitGroup
	for i, k := range selected {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				results[i] = o.Process(ctx, ProcessParams{S3Key: k, Bucket: o.opts.Bucket})
			case <-ctx.Done():
				results[i] = Result{S3Key: k, Bucket: o.opts.Bucket, DocumentID: DocumentID(o.opts.Bucket, k, ""), Status: StatusFailed,
					Stages: Stages{Extraction: &Stage{Status: "failed", Code: jsonrpc.CodeUnavailable, Message: "deadline exceeded before the document was processed"}}}
			}
		})
	}
	wg.Wait()
	for _, r := range results {
		switch r.Status {
		case StatusArchived:
			out.Archived++
		case StatusRejected:
			out.Rejected++
		default:
			out.Failed++
		}
	}
	out.Total, out.Documents = len(results), results
	return out, nil
}

func (o *Orchestrator) getDocumentStatus(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		DocumentID string `json:"document_id"`
	}
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if p.DocumentID == "" {
		return nil, jsonrpc.InvalidParams("document_id is required")
	}
	var doc map[string]any
	if err := o.peers.Call(ctx, "archivist", "get_document", map[string]string{"document_id": p.DocumentID}, &doc); err != nil {
		return nil, peerError(err)
	}
	out := map[string]any{"document_id": p.DocumentID}
	for _, k := range []string{"status", "document_type", "file_name", "s3_key", "bucket", "score", "passed", "created_at", "updated_at"} {
		if v, ok := doc[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// peerError passes a peer's application error on (not found stays not
// found) and turns anything else into "dependency unavailable".
func peerError(err error) error {
	switch code := jsonrpc.CodeOf(err); code {
	case jsonrpc.CodeNotFound, jsonrpc.CodeInvalidParams:
		var rpc *jsonrpc.Error
		errors.As(err, &rpc)
		return jsonrpc.Errorf(code, "%s", rpc.Message)
	default:
		return jsonrpc.Errorf(jsonrpc.CodeUnavailable, "archivist unavailable")
	}
}

// PeerInfo is one entry of discover_agents.
type PeerInfo struct {
	Agent  string          `json:"agent"`
	Status string          `json:"status"` // healthy, degraded or unreachable
	Skills json.RawMessage `json:"skills,omitempty"`
	Health json.RawMessage `json:"health,omitempty"`
	Error  string          `json:"error,omitempty"`
}

func (o *Orchestrator) discoverAgents(ctx context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	out := make([]PeerInfo, len(o.opts.Peers))
	var wg sync.WaitGroup
	for i, name := range o.opts.Peers {
		wg.Go(func() {
			info := PeerInfo{Agent: name}
			var skills struct {
				Skills json.RawMessage `json:"skills"`
			}
			var health struct {
				Status string `json:"status"`
			}
			var rawHealth json.RawMessage
			errS := o.peers.Call(ctx, name, "list_skills", nil, &skills)
			errH := o.peers.Call(ctx, name, "get_health", nil, &rawHealth)
			switch {
			case errS != nil || errH != nil:
				info.Status = "unreachable"
				info.Error = failed(errors.Join(errS, errH)).Message
			default:
				_ = json.Unmarshal(rawHealth, &health)
				info.Status, info.Skills, info.Health = health.Status, skills.Skills, rawHealth
			}
			out[i] = info
		})
	}
	wg.Wait()
	return map[string]any{"agents": out}, nil
}
