package orchestrator

import (
	"context"
	"encoding/json"
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
	archived := map[string]bool{}
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
			if archived[p["document_id"].(string)] {
				return map[string]any{"status": "archived"}, nil
			}
			return nil, jsonrpc.Errorf(agentapi.CodeNotFound, "document not found")
		},
		"archivist.archive_document": func(_ context.Context, p map[string]any) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			id := p["document_id"].(string)
			created := !archived[id]
			archived[id] = true
			return map[string]any{"document_id": id, "status": p["status"], "created": created}, nil
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

func TestStageFailures(t *testing.T) {
	for _, tc := range []struct {
		fail, stage string
		code        int
	}{
		{"extractor.extract_document", "extraction", jsonrpc.CodeInvalidParams},
		{"validator.validate_document", "validation", agentapi.CodeUnavailable},
		{"archivist.archive_document", "archive", agentapi.CodeUnavailable},
		{"archivist.get_document", "archive", agentapi.CodeUnavailable},
	} {
		p := healthy()
		p.fn[tc.fail] = func(context.Context, map[string]any) (any, error) { return nil, jsonrpc.Errorf(tc.code, "no") }
		r := New(p, nil, Options{}).Process(t.Context(), agentapi.ProcessDocumentParams{S3Key: "a.csv"})
		st := map[string]*agentapi.Stage{"extraction": r.Stages.Extraction, "validation": r.Stages.Validation, "archive": r.Stages.Archive}[tc.stage]
		if r.Status != agentapi.StatusFailed || st == nil || st.Status != "failed" || st.Code != tc.code {
			t.Errorf("%s failing: %+v", tc.fail, r)
		}
		for _, c := range p.calls {
			if c == "archivist.archive_document" && tc.fail != "archivist.archive_document" {
				t.Errorf("%s failing: the document was archived anyway", tc.fail)
			}
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
