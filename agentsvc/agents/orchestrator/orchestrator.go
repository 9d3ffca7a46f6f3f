// Package orchestrator runs the document pipeline: extract -> validate ->
// archive, each stage a call to another agent over mTLS with the
// orchestrator's own certificate-bound token.
//
// A document's id is derived from its bucket, key and content hash, so a
// redelivered event finds the document already archived and archives
// nothing twice. A failing stage never hangs the call: every peer call is
// bounded by the request deadline, and the result names the stage that
// failed and the code the peer returned. A permanent failure (the document
// itself was refused: -32602, -32012) is archived with status failed, its
// stage and cause; a transient one (a peer down, busy or too slow) archives
// nothing, so that a retry can succeed (docs/contract.md, Orchestrator).
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

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/fanout"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Caller calls another agent; *agentclient.Client satisfies it.
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
		opts.Peers = agentapi.Peers()
	}
	return &Orchestrator{peers: c, docs: docs, opts: opts, now: time.Now}
}

// Methods returns the orchestrator's methods.
func (o *Orchestrator) Methods() []skill.Method {
	return []skill.Method{
		{Name: agentapi.MethodProcessDocument, Description: "Extract, validate and archive one document: {s3_key, bucket?}.", Handler: o.processDocument},
		{Name: agentapi.MethodProcessBatch, Description: "Process every document under a prefix: {prefix?, file_extension?}.", Handler: o.processBatch},
		{Name: agentapi.MethodGetDocumentStatus, Description: "Status of an archived document: {document_id}.", Handler: o.getDocumentStatus},
		{Name: agentapi.MethodDiscoverAgents, Description: "The peer agents with their skills and health.", Handler: o.discoverAgents},
	}
}

func (o *Orchestrator) processDocument(ctx context.Context, params json.RawMessage) (any, error) {
	var p agentapi.ProcessDocumentParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := o.checkKey(&p); err != nil {
		return nil, err
	}
	return o.Process(ctx, p), nil
}

func (o *Orchestrator) checkKey(p *agentapi.ProcessDocumentParams) error {
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
// a failure is a result with status failed, the failing stage named and the
// failure classified (ProcessResult.Failure). A permanent failure is
// archived as failed; a transient one archives nothing.
func (o *Orchestrator) Process(ctx context.Context, p agentapi.ProcessDocumentParams) agentapi.ProcessResult {
	start := o.now()
	res := agentapi.ProcessResult{S3Key: p.S3Key, Bucket: p.Bucket, DocumentID: DocumentID(p.Bucket, p.S3Key, "")}
	finish := func() agentapi.ProcessResult {
		res.DurationMS = o.now().Sub(start).Milliseconds()
		return res
	}

	// extracted_data is passed on to the validator and the archivist
	// untouched, so it stays encoded.
	var ex agentapi.ExtractResult[json.RawMessage]
	if err := o.peers.Call(ctx, agentapi.Extractor, agentapi.MethodExtractDocument, agentapi.ExtractParams{S3Key: p.S3Key}, &ex); err != nil {
		res.Stages.Extraction = failed(err)
		doc := extractFailure(err, p.S3Key)
		// A document that was read keeps the id a successful
		// extraction would have given it.
		res.DocumentID = DocumentID(p.Bucket, p.S3Key, doc.SHA256)
		o.fail(ctx, &res, agentapi.StageExtraction, res.Stages.Extraction, doc)
		return finish()
	}
	res.DocumentID = DocumentID(p.Bucket, p.S3Key, ex.SHA256)
	res.Stages.Extraction = &agentapi.Stage{Status: agentapi.StageOK, Details: map[string]any{
		"document_type": ex.DocumentType, "file_name": ex.FileName, "file_size": ex.FileSize, "sha256": ex.SHA256}}
	doc := agentapi.ExtractFailure{DocumentType: ex.DocumentType, FileName: ex.FileName, FileSize: ex.FileSize, SHA256: ex.SHA256}

	// A redelivered event: the same content under the same key is already
	// archived (failed included); report it without running the pipeline
	// again.
	var existing agentapi.Document
	err := o.peers.Call(ctx, agentapi.Archivist, agentapi.MethodGetDocument, agentapi.DocumentIDParams{DocumentID: res.DocumentID}, &existing)
	switch {
	case err == nil:
		res.Stages.Validation = &agentapi.Stage{Status: agentapi.StageSkipped, Message: "already archived"}
		res.Stages.Archive = &agentapi.Stage{Status: agentapi.StageOK, Details: map[string]any{"created": false}}
		res.Status = existing.Status
		if existing.Status == agentapi.StatusFailed {
			res.Failure = agentapi.FailurePermanent
		}
		return finish()
	case jsonrpc.CodeOf(err) != agentapi.CodeNotFound:
		res.Stages.Archive = failed(err)
		o.fail(ctx, &res, agentapi.StageArchive, res.Stages.Archive, doc)
		return finish()
	}

	var val agentapi.ValidationReport
	if err := o.peers.Call(ctx, agentapi.Validator, agentapi.MethodValidateDocument, agentapi.ValidateParams{
		DocumentType: ex.DocumentType, ExtractedData: ex.ExtractedData}, &val); err != nil {
		res.Stages.Validation = failed(err)
		o.fail(ctx, &res, agentapi.StageValidation, res.Stages.Validation, doc)
		return finish()
	}
	res.Stages.Validation = &agentapi.Stage{Status: agentapi.StageOK, Details: map[string]any{"score": val.Score, "passed": val.Passed}}

	status := agentapi.StatusRejected
	if val.Passed {
		status = agentapi.StatusArchived
	}
	// The archive keeps the report as the validator wrote it; a report of
	// strings, numbers and booleans always encodes. jsonrpc.Marshal, as
	// the validator encoded it: the size it bounds holds here too
	// (json.Marshal would escape <, > and & to six bytes each).
	validation, _ := jsonrpc.Marshal(val)
	var arc agentapi.ArchiveResult
	if err := o.peers.Call(ctx, agentapi.Archivist, agentapi.MethodArchiveDocument, agentapi.ArchiveParams{
		DocumentID: res.DocumentID, S3Key: p.S3Key, Bucket: p.Bucket, FileName: ex.FileName,
		SHA256: ex.SHA256, DocumentType: ex.DocumentType, Status: status,
		ExtractedData: ex.ExtractedData, Validation: validation,
	}, &arc); err != nil {
		res.Stages.Archive = failed(err)
		o.fail(ctx, &res, agentapi.StageArchive, res.Stages.Archive, doc)
		return finish()
	}
	res.Stages.Archive = &agentapi.Stage{Status: agentapi.StageOK, Details: map[string]any{"created": arc.Created}}
	res.Status = arc.Status
	return finish()
}

// fail ends a run whose stage failed with st. A permanent failure
// (agentapi.Permanent: the peer refused the document itself) is archived
// with status failed, the stage and the peer's message, without extracted
// data, so that get_document and search_documents show it and a
// redelivery finds it; archive_document never overwrites a record, so a
// document is recorded once whatever the deliveries. A transient failure
// archives nothing: the caller retries. When the failure cannot be recorded
// the run is transient too, or it would be lost.
func (o *Orchestrator) fail(ctx context.Context, res *agentapi.ProcessResult, stage string, st *agentapi.Stage, doc agentapi.ExtractFailure) {
	res.Status, res.Failure = agentapi.StatusFailed, agentapi.FailureTransient
	if !agentapi.Permanent(st.Code) {
		return
	}
	var arc agentapi.ArchiveResult
	err := o.peers.Call(ctx, agentapi.Archivist, agentapi.MethodArchiveDocument, agentapi.ArchiveParams{
		DocumentID: res.DocumentID, S3Key: res.S3Key, Bucket: res.Bucket, DocumentType: doc.DocumentType,
		FileName: doc.FileName, SHA256: doc.SHA256, Status: agentapi.StatusFailed, Stage: stage, Error: cause(st.Message),
	}, &arc)
	if err != nil {
		if stage != agentapi.StageArchive {
			res.Stages.Archive = failed(err)
		}
		return
	}
	if stage != agentapi.StageArchive {
		res.Stages.Archive = &agentapi.Stage{Status: agentapi.StageOK, Details: map[string]any{"created": arc.Created}}
	}
	// The record's status: failed, unless someone has moved it since
	// (update_document_status), which then stands.
	res.Status, res.Failure = arc.Status, ""
	if arc.Status == agentapi.StatusFailed {
		res.Failure = agentapi.FailurePermanent
	}
}

// cause cuts msg to what the archivist keeps of a failed document's error.
func cause(msg string) string {
	if len(msg) > agentapi.MaxErrorBytes {
		msg = strings.ToValidUTF8(msg[:agentapi.MaxErrorBytes], "")
	}
	return msg
}

// extractFailure reads what the extractor said about a document it read but
// could not extract (agentapi.ExtractFailure in the error's data), keeping
// only well-formed values; the file name defaults to the key's last segment.
func extractFailure(err error, key string) agentapi.ExtractFailure {
	out := agentapi.ExtractFailure{FileName: path.Base(key)}
	var rpc *jsonrpc.Error
	if !errors.As(err, &rpc) || rpc.Data == nil {
		return out
	}
	raw, mErr := json.Marshal(rpc.Data)
	var d agentapi.ExtractFailure
	if mErr != nil || json.Unmarshal(raw, &d) != nil {
		return out
	}
	if agentapi.ValidSHA256(d.SHA256) {
		out.SHA256, out.FileSize = d.SHA256, d.FileSize
	}
	if d.DocumentType == agentapi.DocumentTypePDF || d.DocumentType == agentapi.DocumentTypeCSV {
		out.DocumentType = d.DocumentType
	}
	return out
}

func failed(err error) *agentapi.Stage {
	var rpc *jsonrpc.Error
	if errors.As(err, &rpc) {
		return &agentapi.Stage{Status: agentapi.StageFailed, Code: rpc.Code, Message: rpc.Message}
	}
	return &agentapi.Stage{Status: agentapi.StageFailed, Code: agentapi.CodeUnavailable, Message: "peer unavailable"}
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

func (o *Orchestrator) processBatch(ctx context.Context, params json.RawMessage) (any, error) {
	var p agentapi.ProcessBatchParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	ext := strings.ToLower(strings.TrimPrefix(p.FileExtension, "."))
	if len(ext) > 16 || strings.ContainsAny(ext, "/\\") {
		return nil, jsonrpc.InvalidParams("file_extension is not an extension")
	}
	keys, err := o.docs.List(ctx, p.Prefix, o.opts.BatchLimit+1)
	if err != nil {
		return nil, jsonrpc.Errorf(agentapi.CodeUnavailable, "cannot list documents")
	}
	out := agentapi.BatchResult{Documents: []agentapi.ProcessResult{}}
	if len(keys) > o.opts.BatchLimit {
		keys, out.Truncated = keys[:o.opts.BatchLimit], true
	}
	var selected []string
	for _, k := range keys {
		if ext == "" || strings.EqualFold(strings.TrimPrefix(path.Ext(k), "."), ext) {
			selected = append(selected, k)
		}
	}
	results := make([]agentapi.ProcessResult, len(selected))
	fanout.Each(ctx, len(selected), o.opts.BatchConcurrency, func(i int) {
		results[i] = o.Process(ctx, agentapi.ProcessDocumentParams{S3Key: selected[i], Bucket: o.opts.Bucket})
	}, func(i int, _ error) {
		k := selected[i]
		results[i] = agentapi.ProcessResult{S3Key: k, Bucket: o.opts.Bucket, DocumentID: DocumentID(o.opts.Bucket, k, ""), Status: agentapi.StatusFailed,
			Failure: agentapi.FailureTransient, Stages: agentapi.Stages{Extraction: &agentapi.Stage{Status: agentapi.StageFailed, Code: agentapi.CodeUnavailable, Message: "deadline exceeded before the document was processed"}}}
	})
	for _, r := range results {
		switch r.Status {
		case agentapi.StatusArchived:
			out.Archived++
		case agentapi.StatusRejected:
			out.Rejected++
		default:
			out.Failed++
		}
	}
	out.Total, out.Documents = len(results), results
	return out, nil
}

func (o *Orchestrator) getDocumentStatus(ctx context.Context, params json.RawMessage) (any, error) {
	var p agentapi.DocumentIDParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if p.DocumentID == "" {
		return nil, jsonrpc.InvalidParams("document_id is required")
	}
	var doc agentapi.Document
	if err := o.peers.Call(ctx, agentapi.Archivist, agentapi.MethodGetDocument, p, &doc); err != nil {
		return nil, peerError(err)
	}
	return agentapi.DocumentStatus{
		DocumentID: p.DocumentID, Status: doc.Status, DocumentType: doc.DocumentType, FileName: doc.FileName,
		S3Key: doc.S3Key, Bucket: doc.Bucket, Score: doc.Score, Passed: doc.Passed, CreatedAt: doc.CreatedAt, UpdatedAt: doc.UpdatedAt,
	}, nil
}

// peerError passes a peer's application error on (not found stays not
// found) and turns anything else into "dependency unavailable".
func peerError(err error) error {
	switch code := jsonrpc.CodeOf(err); code {
	case agentapi.CodeNotFound, jsonrpc.CodeInvalidParams:
		var rpc *jsonrpc.Error
		errors.As(err, &rpc)
		return jsonrpc.Errorf(code, "%s", rpc.Message)
	default:
		return jsonrpc.Errorf(agentapi.CodeUnavailable, "archivist unavailable")
	}
}

func (o *Orchestrator) discoverAgents(ctx context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	out := make([]agentapi.PeerInfo, len(o.opts.Peers))
	var wg sync.WaitGroup
	for i, name := range o.opts.Peers {
		wg.Go(func() {
			info := agentapi.PeerInfo{Agent: name}
			var skills agentapi.SkillList
			var health agentapi.HealthReport
			errS := o.peers.Call(ctx, name, agentapi.MethodListSkills, nil, &skills)
			errH := o.peers.Call(ctx, name, agentapi.MethodGetHealth, nil, &health)
			switch {
			case errS != nil || errH != nil:
				info.Status = agentapi.HealthUnreachable
				info.Error = failed(errors.Join(errS, errH)).Message
			default:
				info.Status, info.Skills, info.Health = health.Status, skills.Skills, &health
			}
			out[i] = info
		})
	}
	wg.Wait()
	return agentapi.DiscoverResult{Agents: out}, nil
}
