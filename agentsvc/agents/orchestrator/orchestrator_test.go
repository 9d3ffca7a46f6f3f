package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// peers fakes the three agents. Each method answers from a function that
// sees the params as they travel: decoded from JSON.
type peers struct {
	mu    sync.Mutex
	calls []string
	fn    map[string]func(ctx context.Context, params map[string]any) (any, error)
}

func (p *peers) Call(ctx context.Context, agent, method string, params, result any) error {
	p.mu.Lock()
	p.calls = append(p.calls, agent+"."+method)
	f := p.fn[agent+"."+method]
	p.mu.Unlock()
	var wire map[string]any
	data, _ := json.Marshal(params)
	_ = json.Unmarshal(data, &wire)
	out, err := f(ctx, wire)
	if err != nil {
		return err
	}
	data, _ = json.Marshal(out)
	return json.Unmarshal(data, result)
}

func healthy() *peers {
	archived := map[string]string{} // id -> status
	var mu sync.Mutex
	return &peers{fn: map[string]func(context.Context, map[string]any) (any, error){
		"extractor.extract_document": func(context.Context, map[string]any) (any, error) {
			return map[string]any{"document_type": "csv", "file_name": "a.csv", "file_size": 4, "sha256": "abc", "extracted_data": map[string]any{"rows": []any{}}}, nil
		},
		"validator.validate_document": func(context.Context, map[string]any) (any, error) {
			return map[string]any{"score": 90, "passed": true, "issues": []any{}}, nil
		},
		"archivist.get_document": func(_ context.Context, p map[string]any) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			if status, ok := archived[p["document_id"].(string)]; ok {
				return map[string]any{"status": status}, nil
			}
			return nil, jsonrpc.Errorf(agentapi.CodeNotFound, "document not found")
		},
		"archivist.archive_document": func(_ context.Context, p map[string]any) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			id := p["document_id"].(string)
			status, exists := archived[id]
			if !exists {
				status = p["status"].(string)
				archived[id] = status
			}
			return map[string]any{"document_id": id, "status": status, "created": !exists}, nil
		},
	}}
}

func TestProcess(t *testing.T) {
	p := healthy()
	o := New(p, nil, Options{})
	r := o.Process(t.Context(), agentapi.ProcessDocumentParams{S3Key: "in/a.csv", Bucket: "b"})
	if r.Status != agentapi.StatusArchived || r.DocumentID != DocumentID("b", "in/a.csv", "abc") || r.Stages.Archive.Details["created"] != true {
		t.Fatalf("%+v", r)
	}
	again := o.Process(t.Context(), agentapi.ProcessDocumentParams{S3Key: "in/a.csv", Bucket: "b"})
	if again.DocumentID != r.DocumentID || again.Status != agentapi.StatusArchived || again.Stages.Validation.Status != "skipped" {
		t.Fatalf("redelivery: %+v", again)
	}
	if DocumentID("b", "k", "h") == DocumentID("b2", "k", "h") || DocumentID("b", "k", "h") == DocumentID("b", "k", "h2") || DocumentID("b", "k\x00", "") == DocumentID("b", "k", "\x00") {
		t.Fatal("document ids collide")
	}
}

// TestStageFailures: a transient failure (a peer down or busy) archives
// nothing; a permanent one (the peer refused the document: -32602, -32012)
// is archived with status failed, its stage and the peer's message, once;
// failing to record it makes the run transient.
func TestStageFailures(t *testing.T) {
	const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		fail, stage string
		code        int
		failure     string
		data        any // the error's data
		recordFails bool
		wantID      string
	}{
		{fail: "extractor.extract_document", stage: "extraction", code: agentapi.CodeUnavailable, failure: "transient"},
		{fail: "extractor.extract_document", stage: "extraction", code: jsonrpc.CodeInvalidParams, failure: "permanent",
			wantID: DocumentID("", "a.csv", "")},
		{fail: "extractor.extract_document", stage: "extraction", code: jsonrpc.CodeInvalidParams, failure: "permanent",
			data: agentapi.ExtractFailure{DocumentType: "csv", FileName: "a.csv", FileSize: 9, SHA256: sum}, wantID: DocumentID("", "a.csv", sum)},
		{fail: "extractor.extract_document", stage: "extraction", code: agentapi.CodeTooLarge, failure: "permanent",
			data: map[string]any{"sha256": "../../etc", "document_type": "exe"}, wantID: DocumentID("", "a.csv", "")},
		{fail: "extractor.extract_document", stage: "extraction", code: jsonrpc.CodeInvalidParams, failure: "transient", recordFails: true},
		{fail: "validator.validate_document", stage: "validation", code: agentapi.CodeUnavailable, failure: "transient"},
		{fail: "validator.validate_document", stage: "validation", code: agentapi.CodeTooLarge, failure: "permanent", wantID: DocumentID("", "a.csv", "abc")},
		{fail: "validator.validate_document", stage: "validation", code: jsonrpc.CodeInvalidParams, failure: "permanent", wantID: DocumentID("", "a.csv", "abc")},
		{fail: "validator.validate_document", stage: "validation", code: agentapi.CodeForbidden, failure: "transient"},
		{fail: "archivist.archive_document", stage: "archive", code: agentapi.CodeUnavailable, failure: "transient"},
		{fail: "archivist.get_document", stage: "archive", code: agentapi.CodeUnavailable, failure: "transient"},
		{fail: "archivist.get_document", stage: "archive", code: jsonrpc.CodeInternalError, failure: "transient"},
	} {
		p := healthy()
		var recorded []map[string]any
		archive := p.fn["archivist.archive_document"]
		p.fn["archivist.archive_document"] = func(ctx context.Context, params map[string]any) (any, error) {
			if params["status"] == "failed" {
				recorded = append(recorded, params)
				if tc.recordFails {
					return nil, jsonrpc.Errorf(agentapi.CodeUnavailable, "archive store unavailable")
				}
			}
			return archive(ctx, params)
		}
		p.fn[tc.fail] = func(context.Context, map[string]any) (any, error) {
			return nil, &jsonrpc.Error{Code: tc.code, Message: "no", Data: tc.data}
		}
		name := fmt.Sprintf("%s %d %s", tc.fail, tc.code, tc.failure)
		r := New(p, nil, Options{}).Process(t.Context(), agentapi.ProcessDocumentParams{S3Key: "a.csv"})
		st := map[string]*agentapi.Stage{"extraction": r.Stages.Extraction, "validation": r.Stages.Validation, "archive": r.Stages.Archive}[tc.stage]
		if r.Status != agentapi.StatusFailed || r.Failure != tc.failure || st == nil || st.Status != "failed" || st.Code != tc.code {
			t.Errorf("%s: %+v", name, r)
			continue
		}
		if tc.failure == "transient" {
			if len(recorded) > 0 && !tc.recordFails {
				t.Errorf("%s: a transient failure was archived: %v", name, recorded)
			}
			continue
		}
		if len(recorded) != 1 || recorded[0]["stage"] != tc.stage || recorded[0]["error"] != "no" || recorded[0]["extracted_data"] != nil ||
			r.DocumentID != tc.wantID || recorded[0]["document_id"] != tc.wantID {
			t.Errorf("%s: recorded %v as %s, want one record at stage %s under %s", name, recorded, r.DocumentID, tc.stage, tc.wantID)
		}
		// A redelivery finds the record and changes nothing.
		again := New(p, nil, Options{}).Process(t.Context(), agentapi.ProcessDocumentParams{S3Key: "a.csv"})
		if again.Status != agentapi.StatusFailed || again.Failure != agentapi.FailurePermanent || again.DocumentID != r.DocumentID {
			t.Errorf("%s: redelivery %+v", name, again)
		}
	}
}

func TestSlowPeerIsCutByTheDeadline(t *testing.T) {
	p := healthy()
	p.fn["validator.validate_document"] = func(ctx context.Context, _ map[string]any) (any, error) {
		<-ctx.Done() // a peer that never answers
		return nil, &jsonrpc.Error{Code: agentapi.CodeUnavailable, Message: "validator unavailable"}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := New(p, nil, Options{}).Process(ctx, agentapi.ProcessDocumentParams{S3Key: "a.csv"})
	if r.Status != agentapi.StatusFailed || r.Stages.Validation.Code != agentapi.CodeUnavailable || time.Since(start) > 2*time.Second {
		t.Fatalf("%+v after %s", r, time.Since(start))
	}
}

func TestParams(t *testing.T) {
	o := New(healthy(), nil, Options{Bucket: "docs"})
	for name, params := range map[string]string{
		"no key":        `{}`,
		"unknown field": `{"s3_key":"a","path":"/etc"}`,
		"other bucket":  `{"s3_key":"a.csv","bucket":"evil"}`,
		"key too long":  `{"s3_key":"` + string(make([]byte, 0)) + string(bytesOf(1100)) + `"}`,
	} {
		if _, err := o.processDocument(t.Context(), json.RawMessage(params)); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("%s: %v", name, err)
		}
	}
	out, err := o.processDocument(t.Context(), json.RawMessage(`{"s3_key":"a.csv"}`))
	if err != nil || out.(agentapi.ProcessResult).Bucket != "docs" {
		t.Fatalf("default bucket: %v %v", out, err)
	}
}

func bytesOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a'
	}
	return b
}

type lister []string

func (l lister) List(context.Context, string, int) ([]string, error) { return l, nil }

func TestBatch(t *testing.T) {
	o := New(healthy(), lister{"a.csv", "b.CSV", "c.pdf", "d.txt"}, Options{BatchConcurrency: 2})
	out, err := o.processBatch(t.Context(), json.RawMessage(`{"file_extension":".csv"}`))
	if err != nil {
		t.Fatal(err)
	}
	b := out.(agentapi.BatchResult)
	if b.Total != 2 || b.Archived != 2 || len(b.Documents) != 2 {
		t.Fatalf("%+v", b)
	}
	if _, err := o.processBatch(t.Context(), json.RawMessage(`{"file_extension":"../x"}`)); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
		t.Fatalf("bad extension: %v", err)
	}
}

// capture records the archive_document params as the orchestrator passes
// them, before any encoding of the fake.
type capture struct {
	*peers
	mu      sync.Mutex
	archive agentapi.ArchiveParams
}

func (c *capture) Call(ctx context.Context, agent, method string, params, result any) error {
	if method == agentapi.MethodArchiveDocument {
		c.mu.Lock()
		c.archive = params.(agentapi.ArchiveParams)
		c.mu.Unlock()
	}
	return c.peers.Call(ctx, agent, method, params, result)
}

// TestValidationKeepsItsSize: the report goes to the archivist encoded as
// the validator encoded it, so the size the validator bounds
// (agentapi.MaxValidationReportBytes) holds on the archive hop: <, > and &
// are not escaped to six bytes each.
func TestValidationKeepsItsSize(t *testing.T) {
	report := agentapi.ValidationReport{Score: 90, Passed: true, Issues: []agentapi.ValidationIssue{
		{Rule: "header_unique", Severity: "error", Message: strings.Repeat("<&>", 80)}}}
	p := healthy()
	p.fn["validator.validate_document"] = func(context.Context, map[string]any) (any, error) { return report, nil }
	c := &capture{peers: p}
	if r := New(c, nil, Options{}).Process(t.Context(), agentapi.ProcessDocumentParams{S3Key: "in/a.csv"}); r.Status != agentapi.StatusArchived {
		t.Fatalf("%+v", r)
	}
	want, _ := jsonrpc.Marshal(report)
	if got := c.archive.Validation; string(got) != string(want) {
		t.Fatalf("validation passed on as %d bytes, the validator's encoding is %d:\n%s", len(got), len(want), got)
	}
}
