package lambda_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ca-a2a/ca-a2a/internal/testutil/emftest"
	"github.com/ca-a2a/ca-a2a/lambda"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/emf"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// fakeOrchestrator answers process_document from the key: ok* archived,
// rejected* rejected, permanent* a permanent failure (archived as failed),
// transient* a transient one, failed* a failure the answer does not
// classify, down* an unavailable orchestrator. It records the calls and how many ran at once.
type fakeOrchestrator struct {
	mu      sync.Mutex
	calls   []agentapi.ProcessDocumentParams
	running atomic.Int32
	most    atomic.Int32
	hold    time.Duration
}

func (f *fakeOrchestrator) Call(ctx context.Context, agent, method string, params, result any) error {
	if agent != agentapi.Orchestrator || method != agentapi.MethodProcessDocument {
		return jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "unexpected %s.%s", agent, method)
	}
	p := params.(agentapi.ProcessDocumentParams)
	f.mu.Lock()
	f.calls = append(f.calls, p)
	f.mu.Unlock()
	now := f.running.Add(1)
	defer f.running.Add(-1)
	for m := f.most.Load(); now > m && !f.most.CompareAndSwap(m, now); m = f.most.Load() {
	}
	select {
	case <-time.After(f.hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	res := result.(*agentapi.ProcessResult)
	res.DocumentID, res.S3Key = "doc-"+p.S3Key, p.S3Key
	switch {
	case strings.HasPrefix(p.S3Key, "ok"):
		res.Status = agentapi.StatusArchived
	case strings.HasPrefix(p.S3Key, "rejected"):
		res.Status = agentapi.StatusRejected
	case strings.HasPrefix(p.S3Key, "permanent"):
		res.Status, res.Failure = agentapi.StatusFailed, agentapi.FailurePermanent
		res.Stages.Extraction = &agentapi.Stage{Status: agentapi.StageFailed, Code: jsonrpc.CodeInvalidParams, Message: "document could not be parsed: time limit"}
	case strings.HasPrefix(p.S3Key, "transient"):
		res.Status, res.Failure = agentapi.StatusFailed, agentapi.FailureTransient
		res.Stages.Validation = &agentapi.Stage{Status: agentapi.StageFailed, Code: agentapi.CodeUnavailable, Message: "validator unavailable"}
	case strings.HasPrefix(p.S3Key, "failed"):
		res.Status = agentapi.StatusFailed
	default:
		return jsonrpc.Errorf(agentapi.CodeUnavailable, "orchestrator unavailable")
	}
	return nil
}

func (f *fakeOrchestrator) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Bucket+"/"+c.S3Key)
	}
	slices.Sort(out)
	return out
}

func message(id, body string) events.SQSMessage { return events.SQSMessage{MessageId: id, Body: body} }

func s3Notification(keys ...string) string {
	var recs []map[string]any
	for _, k := range keys {
		recs = append(recs, map[string]any{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
			"s3": map[string]any{"bucket": map[string]any{"name": "docs"}, "object": map[string]any{"key": k}}})
	}
	b, _ := json.Marshal(map[string]any{"Records": recs})
	return string(b)
}

// TestSQSPartialFailures: exactly the messages with a failed object are
// reported, each once, whatever else the batch holds; nothing else is.
func TestSQSPartialFailures(t *testing.T) {
	type counts struct{ processed, failed, retried float64 }
	tests := []struct {
		name      string
		messages  []events.SQSMessage
		failures  []string
		callsMade []string
		counts    counts // the invocation's metrics
	}{
		{"all processed", []events.SQSMessage{
			message("m1", `{"s3_key":"ok-1.pdf","bucket":"docs"}`),
			message("m2", `{"s3_key":"rejected-1.csv","bucket":"docs"}`),
		}, nil, []string{"docs/ok-1.pdf", "docs/rejected-1.csv"}, counts{processed: 2}},
		{"mixed batch", []events.SQSMessage{
			message("ok", `{"s3_key":"ok-1.pdf","bucket":"docs"}`),
			message("half", s3Notification("ok-2.pdf", "down-1.pdf")),
			message("poison", `not json`),
			message("test-event", `{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"docs"}`),
			message("pipeline-failed", `{"s3_key":"failed-1.pdf","bucket":"docs"}`),
			message("removed", `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"docs"},"object":{"key":"gone.pdf"}}}]}`),
		}, []string{"half", "poison", "pipeline-failed"}, []string{"docs/down-1.pdf", "docs/failed-1.pdf", "docs/ok-1.pdf", "docs/ok-2.pdf"},
			counts{processed: 2, retried: 3}},
		{"failures classified by the orchestrator", []events.SQSMessage{
			message("permanent", `{"s3_key":"permanent-1.pdf","bucket":"docs"}`),
			message("transient", `{"s3_key":"transient-1.pdf","bucket":"docs"}`),
			message("unclassified", `{"s3_key":"failed-2.pdf","bucket":"docs"}`),
			message("mixed", s3Notification("permanent-2.pdf", "transient-2.pdf")),
			message("both-permanent", s3Notification("permanent-3.pdf", "ok-3.pdf")),
		}, []string{"transient", "unclassified", "mixed"}, []string{"docs/failed-2.pdf", "docs/ok-3.pdf", "docs/permanent-1.pdf",
			"docs/permanent-2.pdf", "docs/permanent-3.pdf", "docs/transient-1.pdf", "docs/transient-2.pdf"},
			counts{processed: 4, failed: 3, retried: 3}},
		{"every message fails", []events.SQSMessage{
			message("a", `{"s3_key":"down-1.pdf"}`),
			message("b", `{"s3_key":"down-2.pdf","extra":1}`),
			message("c", `[]`),
		}, []string{"a", "b", "c"}, []string{"/down-1.pdf"}, counts{retried: 3}},
		{"empty batch", nil, nil, nil, counts{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeOrchestrator{}
			var metrics bytes.Buffer
			h := &lambda.Handler{Orchestrator: f, Concurrency: 2, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: emf.NewWriter(&metrics)}
			var out any
			var err error
			if tc.messages == nil { // Invoke refuses an event without records
				out, err = h.HandleSQS(t.Context(), events.SQSEvent{})
			} else {
				out, err = h.Invoke(t.Context(), sqsEvent(tc.messages...))
			}
			if err != nil {
				t.Fatal(err)
			}
			resp := out.(events.SQSEventResponse)
			var got []string
			for _, fl := range resp.BatchItemFailures {
				got = append(got, fl.ItemIdentifier)
			}
			if !slices.Equal(got, tc.failures) {
				t.Fatalf("batchItemFailures %v, want %v", got, tc.failures)
			}
			if resp.BatchItemFailures == nil {
				t.Fatal("batchItemFailures is null; Lambda reads that as a failed batch")
			}
			if keys := f.keys(); !slices.Equal(keys, tc.callsMade) {
				t.Fatalf("calls %v, want %v", keys, tc.callsMade)
			}
			if tc.messages == nil {
				return
			}
			lines := emftest.Lines(t, metrics.Bytes())
			if len(lines) != 1 {
				t.Fatalf("%d metrics lines, want 1", len(lines))
			}
			l := lines[0]
			if got := (counts{l.Value(t, "DocumentsProcessed"), l.Value(t, "DocumentsFailed"), l.Value(t, "DocumentsRetried")}); got != tc.counts {
				t.Errorf("metrics %+v, want %+v", got, tc.counts)
			}
		})
	}
}

func TestFanOutIsBounded(t *testing.T) {
	f := &fakeOrchestrator{hold: 20 * time.Millisecond}
	h := &lambda.Handler{Orchestrator: f, Concurrency: 3, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var msgs []events.SQSMessage
	for i := range 12 {
		msgs = append(msgs, message(string(rune('a'+i)), `{"s3_key":"ok-`+string(rune('a'+i))+`.pdf"}`))
	}
	resp, err := h.HandleSQS(t.Context(), events.SQSEvent{Records: msgs})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%v %v", resp, err)
	}
	if n := f.most.Load(); n > 3 || n < 1 {
		t.Fatalf("%d calls at once, want at most 3", n)
	}
	if len(f.keys()) != 12 {
		t.Fatalf("%d calls, want 12", len(f.keys()))
	}
}

// TestDeadlineSpent: with less time left than the safety margin no call
// starts, and every message is reported for retry.
func TestDeadlineSpent(t *testing.T) {
	f := &fakeOrchestrator{}
	h := &lambda.Handler{Orchestrator: f, SafetyMargin: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := h.HandleSQS(ctx, events.SQSEvent{Records: []events.SQSMessage{
		message("a", `{"s3_key":"ok-1.pdf"}`), message("b", s3Notification("ok-2.pdf", "ok-3.pdf")),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 2 || len(f.keys()) != 0 {
		t.Fatalf("failures %v after %d calls; want both messages and no call", resp.BatchItemFailures, len(f.keys()))
	}
}

// TestS3DirectReportsFailedKeys: a direct S3 invocation fails, naming the
// keys, so that Lambda's retry or on-failure destination applies.
func TestS3DirectReportsFailedKeys(t *testing.T) {
	var e events.S3Event
	if err := json.Unmarshal([]byte(s3Notification("ok-1.pdf", "down-1.pdf", "failed-1.pdf", "permanent-1.pdf")), &e); err != nil {
		t.Fatal(err)
	}
	h := &lambda.Handler{Orchestrator: &fakeOrchestrator{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := h.HandleS3(t.Context(), e)
	if err == nil || !strings.Contains(err.Error(), "2 of 4 objects failed") || !strings.Contains(err.Error(), "down-1.pdf") ||
		!strings.Contains(err.Error(), "failed-1.pdf") || strings.Contains(err.Error(), "ok-1.pdf") || strings.Contains(err.Error(), "permanent-1.pdf") {
		t.Fatalf("err = %v", err)
	}
	if err := h.HandleS3(t.Context(), events.S3Event{}); err != nil {
		t.Fatalf("empty event: %v", err)
	}
}

type callerFunc func(ctx context.Context, agent, method string, params, result any) error

func (f callerFunc) Call(ctx context.Context, agent, method string, params, result any) error {
	return f(ctx, agent, method, params, result)
}

func sqsEvent(msgs ...events.SQSMessage) json.RawMessage {
	for i := range msgs {
		msgs[i].EventSource = "aws:sqs"
	}
	b, _ := json.Marshal(events.SQSEvent{Records: msgs})
	return b
}

// TestOneMetricsLinePerInvocation runs events through Invoke and reads
// each invocation's EMF line: documents processed, failed (permanently),
// retried, token requests and the cold start.
func TestOneMetricsLinePerInvocation(t *testing.T) {
	var out bytes.Buffer
	var fetches, pending atomic.Int32
	// Like the real client, the first call of an invocation gets the
	// token it needs.
	f := callerFunc(func(ctx context.Context, agent, method string, params, result any) error {
		fetches.Add(pending.Swap(0))
		return (&fakeOrchestrator{}).Call(ctx, agent, method, params, result)
	})
	h := &lambda.Handler{Orchestrator: f, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: emf.NewWriter(&out),
		TokenFetches: func() int { return int(fetches.Load()) }}
	type counts struct{ processed, failed, retried, tokens, cold float64 }
	tests := []struct {
		name    string
		event   json.RawMessage
		fetches int32 // token requests the invocation makes
		want    counts
	}{
		{"cold: SQS batch, a poison message, a failed pipeline, an orchestrator down", sqsEvent(
			message("ok", `{"s3_key":"ok-1.pdf","bucket":"docs"}`),
			message("half", s3Notification("rejected-2.pdf", "down-1.pdf")),
			message("poison", `not json`),
			message("pipeline-failed", `{"s3_key":"failed-1.pdf","bucket":"docs"}`),
		), 1, counts{processed: 2, retried: 3, tokens: 1, cold: 1}},
		{"warm: SQS batch with permanent failures", sqsEvent(
			message("permanent", `{"s3_key":"permanent-1.pdf","bucket":"docs"}`),
			message("mixed", s3Notification("permanent-2.pdf", "transient-1.pdf", "ok-5.pdf")),
		), 0, counts{processed: 3, failed: 2, retried: 1}},
		{"warm: S3 event", json.RawMessage(s3Notification("ok-3.pdf", "down-2.pdf")), 0, counts{processed: 1, retried: 1}},
		{"warm: S3 event, a permanent failure", json.RawMessage(s3Notification("permanent-4.pdf", "rejected-4.pdf")), 0, counts{processed: 2, failed: 1}},
		{"warm: unsupported event", json.RawMessage(`{"hello":"world"}`), 0, counts{}},
		{"warm: token fetched again", sqsEvent(message("ok", `{"s3_key":"ok-4.pdf"}`)), 1, counts{processed: 1, tokens: 1}},
	}
	for _, tc := range tests {
		out.Reset()
		pending.Store(tc.fetches)
		_, _ = h.Invoke(t.Context(), tc.event)
		lines := emftest.Lines(t, out.Bytes())
		if len(lines) != 1 {
			t.Fatalf("%s: %d lines, want 1:\n%s", tc.name, len(lines), out.String())
		}
		l := lines[0]
		got := counts{l.Value(t, "DocumentsProcessed"), l.Value(t, "DocumentsFailed"), l.Value(t, "DocumentsRetried"),
			l.Value(t, "TokenFetches"), l.Value(t, "ColdStart")}
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
		if l.Dimensions["Agent"] != "lambda" || l.Namespaces[0] != "CaA2a" || fmt.Sprint(l.Sets["ColdStart"]) != "[[Agent]]" ||
			l.Units["DocumentsProcessed"] != "Count" {
			t.Errorf("%s: line %+v", tc.name, l)
		}
	}
}
