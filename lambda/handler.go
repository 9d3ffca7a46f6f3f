// Package lambda is the Lambda handler: it turns S3 and SQS events into one
// process_document call per object to the orchestrator, over mTLS with a
// certificate-bound token, and reports every failure so that nothing is
// dropped silently (docs/architecture.md, The request path).
package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/emf"
	"github.com/ca-a2a/ca-a2a/shared/fanout"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Caller calls an agent; *agentclient.Client satisfies it.
type Caller interface {
	Call(ctx context.Context, agent, method string, params, result any) error
}

// Handler handles S3 and SQS events. Build it once per execution
// environment: its client keeps connections and the token warm.
type Handler struct {
	Orchestrator Caller
	// Concurrency bounds the calls in flight (FANOUT_CONCURRENCY, default 8).
	Concurrency int
	// SafetyMargin is kept free before the invocation deadline, so the
	// handler can report what failed (default 2s).
	SafetyMargin time.Duration
	Log          *slog.Logger
	// Metrics, when set, receives one Embedded Metric Format line per
	// invocation of Invoke (docs/operations.md, Metrics and dashboards).
	Metrics *emf.Writer
	// TokenFetches reports the token requests made so far
	// (tokensource.Source.Fetches); nil reports none.
	TokenFetches func() int

	invoked atomic.Bool // a first invocation happened: the next are warm
}

// outcome is how one document ended: what the answer reports and what
// the metrics count.
type outcome int

const (
	// done: the orchestrator answered archived or rejected.
	done outcome = iota
	// permanent: failed for good; acknowledged, not retried.
	permanent
	// transient: reported for retry (batchItemFailures, or the error of a
	// direct S3 invocation).
	transient
)

// classify is the one place that says how a document is reported, from
// the orchestrator's answer res or the error of the call. It is done
// with when the answer says so: processed (archived or rejected), or
// failed permanently (then archived as failed, so acknowledging it loses
// nothing). Anything else, including a failure the answer does not
// classify, is transient and returned with an error for the report: SQS
// redelivers it until maxReceiveCount sends it to the dead-letter queue.
func classify(res agentapi.ProcessResult, err error) (outcome, error) {
	switch {
	case err != nil:
		return transient, err
	case res.Status == agentapi.StatusArchived || res.Status == agentapi.StatusRejected:
		return done, nil
	case res.Status == agentapi.StatusFailed && res.Failure == agentapi.FailurePermanent:
		return permanent, nil
	}
	stage, st := failedStage(res.Stages)
	if st.Code == 0 {
		st.Code = agentapi.CodeUnavailable
	}
	return transient, &jsonrpc.Error{Code: st.Code, Message: fmt.Sprintf("lambda: document %s %s at %s (%s): %s", res.DocumentID, res.Status, stage, res.Failure, st.Message)}
}

// tally counts the documents of one invocation, for its EMF line.
type tally struct {
	processed, failed, retried int
}

func (t *tally) add(o outcome) {
	switch o {
	case done:
		t.processed++
	case permanent:
		// The orchestrator answered; the document will not be retried.
		t.processed++
		t.failed++
	case transient:
		t.retried++
	}
}

// Invoke is the entry point for lambda.Start: it recognises the event by
// its records' eventSource and answers an SQS event with
// batchItemFailures, an S3 event with an error when any object failed.
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	cold := !h.invoked.Swap(true)
	fetches := h.tokenFetches()
	var t tally
	defer func() { h.emit(t, h.tokenFetches()-fetches, cold) }()
	var probe struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil || len(probe.Records) == 0 {
		h.log().Error("event is neither an S3 nor an SQS event", "error", err)
		return nil, errors.New("lambda: unsupported event: want S3 or SQS records")
	}
	switch src := probe.Records[0].EventSource; src {
	case "aws:sqs":
		var e events.SQSEvent
		if err := json.Unmarshal(payload, &e); err != nil {
			return nil, fmt.Errorf("lambda: malformed SQS event: %w", err)
		}
		var resp events.SQSEventResponse
		resp, t = h.handleSQS(ctx, e)
		return resp, nil
	case "aws:s3":
		var e events.S3Event
		if err := json.Unmarshal(payload, &e); err != nil {
			return nil, fmt.Errorf("lambda: malformed S3 event: %w", err)
		}
		var err error
		t, err = h.handleS3(ctx, e)
		return nil, err
	default:
		return nil, fmt.Errorf("lambda: unsupported event source %q", src)
	}
}

// HandleS3 processes the ObjectCreated records of a direct S3 trigger. It
// returns an error naming the failed keys, so that Lambda's retry or
// on-failure destination applies.
func (h *Handler) HandleS3(ctx context.Context, e events.S3Event) error {
	_, err := h.handleS3(ctx, e)
	return err
}

func (h *Handler) handleS3(ctx context.Context, e events.S3Event) (tally, error) {
	var t tally
	var objs []agentapi.ProcessDocumentParams
	for _, r := range e.Records {
		if !strings.HasPrefix(r.EventName, "ObjectCreated:") {
			h.log().Info("ignoring S3 event", "event", r.EventName, "bucket", r.S3.Bucket.Name, "s3_key", r.S3.Object.URLDecodedKey)
			continue
		}
		objs = append(objs, agentapi.ProcessDocumentParams{Bucket: r.S3.Bucket.Name, S3Key: r.S3.Object.URLDecodedKey})
	}
	var failed []string
	for i, o := range h.process(ctx, objs) {
		t.add(o)
		if o == transient {
			failed = append(failed, objs[i].S3Key)
		}
	}
	if len(failed) > 0 {
		return t, fmt.Errorf("lambda: %d of %d objects failed: %s", len(failed), len(objs), strings.Join(failed, ", "))
	}
	return t, nil
}

// HandleSQS processes each message and reports exactly the failed message
// ids, so that only they are retried (and, after maxReceiveCount, land in
// the dead-letter queue).
func (h *Handler) HandleSQS(ctx context.Context, e events.SQSEvent) (events.SQSEventResponse, error) {
	resp, _ := h.handleSQS(ctx, e)
	return resp, nil
}

func (h *Handler) handleSQS(ctx context.Context, e events.SQSEvent) (events.SQSEventResponse, tally) {
	var t tally
	var objs []agentapi.ProcessDocumentParams
	var owner []int // objs[i] belongs to message owner[i]
	failed := make([]bool, len(e.Records))
	for i, m := range e.Records {
		found, err := ParseMessage(m.Body)
		if err != nil {
			// Reported for retry like a transient failure, so that it
			// reaches the dead-letter queue: counted as retried.
			failed[i] = true
			t.retried++
			h.log().Error("poison message", "message_id", m.MessageId, "error", err)
			continue
		}
		if len(found) == 0 {
			h.log().Info("acknowledged message without objects", "message_id", m.MessageId)
		}
		for _, o := range found {
			objs = append(objs, o)
			owner = append(owner, i)
		}
	}
	for j, o := range h.process(ctx, objs) {
		t.add(o)
		if o == transient {
			failed[owner[j]] = true
		}
	}
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for i, f := range failed {
		if f {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: e.Records[i].MessageId})
		}
	}
	return resp, t
}

// ParseMessage reads an SQS body: an S3 event notification (its
// ObjectCreated records), the s3:TestEvent (no objects), or
// {"s3_key": "...", "bucket": "..."}. Anything else is an error.
func ParseMessage(body string) ([]agentapi.ProcessDocumentParams, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &probe); err != nil {
		return nil, errors.New("body is not a JSON object")
	}
	if ev, ok := probe["Event"]; ok && string(ev) == `"s3:TestEvent"` {
		return nil, nil
	}
	if _, ok := probe["Records"]; ok {
		var e events.S3Event
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			return nil, fmt.Errorf("malformed S3 event notification: %w", err)
		}
		var out []agentapi.ProcessDocumentParams
		for _, r := range e.Records {
			if r.EventSource != "aws:s3" || r.S3.Bucket.Name == "" || r.S3.Object.URLDecodedKey == "" {
				return nil, errors.New("S3 record without source, bucket or key")
			}
			if strings.HasPrefix(r.EventName, "ObjectCreated:") {
				out = append(out, agentapi.ProcessDocumentParams{Bucket: r.S3.Bucket.Name, S3Key: r.S3.Object.URLDecodedKey})
			}
		}
		return out, nil
	}
	var o agentapi.ProcessDocumentParams
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil || o.S3Key == "" {
		return nil, errors.New(`body is neither an S3 notification nor {"s3_key","bucket"}`)
	}
	return []agentapi.ProcessDocumentParams{o}, nil
}

// process calls process_document for each object, Concurrency at a time,
// each call bounded by the invocation deadline minus the safety margin. It
// returns how each object ended (classify); an object that was not called
// (the deadline came first) is transient.
func (h *Handler) process(ctx context.Context, objs []agentapi.ProcessDocumentParams) []outcome {
	outs := make([]outcome, len(objs))
	for i := range outs {
		outs[i] = transient // until the answer says otherwise
	}
	if len(objs) == 0 {
		return outs
	}
	if deadline, ok := ctx.Deadline(); ok {
		margin := h.SafetyMargin
		if margin <= 0 {
			margin = 2 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-margin))
		defer cancel()
	}
	n := h.Concurrency
	if n <= 0 {
		n = 8
	}
	fanout.Each(ctx, len(objs), n, func(i int) {
		o := objs[i]
		start := time.Now()
		var res agentapi.ProcessResult
		err := h.Orchestrator.Call(ctx, agentapi.Orchestrator, agentapi.MethodProcessDocument, o, &res)
		out, err := classify(res, err)
		outs[i] = out
		switch out {
		case transient:
			h.logFailure(o, err)
		case permanent:
			stage, st := failedStage(res.Stages)
			h.log().Warn("document failed permanently; acknowledged", "bucket", o.Bucket, "s3_key", o.S3Key, "document_id", res.DocumentID,
				"stage", stage, "code", st.Code, "error", st.Message)
		default:
			h.log().Info("document processed", "bucket", o.Bucket, "s3_key", o.S3Key, "document_id", res.DocumentID,
				"status", res.Status, "latency_ms", time.Since(start).Milliseconds())
		}
	}, func(i int, err error) {
		outs[i] = transient
		h.logFailure(objs[i], err)
	})
	return outs
}

// failedStage returns the first stage that failed, in pipeline order.
func failedStage(st agentapi.Stages) (string, agentapi.Stage) {
	for _, s := range []struct {
		name  string
		stage *agentapi.Stage
	}{{agentapi.StageExtraction, st.Extraction}, {agentapi.StageValidation, st.Validation}, {agentapi.StageArchive, st.Archive}} {
		if s.stage != nil && s.stage.Status == agentapi.StageFailed {
			return s.name, *s.stage
		}
	}
	return "unknown stage", agentapi.Stage{}
}

func (h *Handler) logFailure(o agentapi.ProcessDocumentParams, err error) {
	h.log().Error("document failed", "bucket", o.Bucket, "s3_key", o.S3Key, "code", jsonrpc.CodeOf(err), "error", err)
}

func (h *Handler) tokenFetches() int {
	if h.TokenFetches == nil {
		return 0
	}
	return h.TokenFetches()
}

// emit writes the invocation's EMF line: Agent=lambda, the documents
// processed, failed (permanently) and retried, the token requests and
// whether the execution environment was cold.
func (h *Handler) emit(t tally, tokenFetches int, cold bool) {
	if h.Metrics == nil {
		return
	}
	coldStart := 0.0
	if cold {
		coldStart = 1
	}
	count := func(name string, v float64) emf.Metric {
		return emf.Metric{Name: name, Unit: emf.Count, Values: []float64{v}}
	}
	err := h.Metrics.Write(emf.Document{Namespace: agentapi.MetricsNamespace, Timestamp: time.Now(),
		Dimensions: map[string]string{agentapi.DimensionAgent: agentapi.Lambda},
		Directives: []emf.Directive{{Dimensions: [][]string{{agentapi.DimensionAgent}}, Metrics: []emf.Metric{
			count(agentapi.MetricDocumentsProcessed, float64(t.processed)),
			count(agentapi.MetricDocumentsFailed, float64(t.failed)),
			count(agentapi.MetricDocumentsRetried, float64(t.retried)),
			count(agentapi.MetricTokenFetches, float64(tokenFetches)),
			count(agentapi.MetricColdStart, coldStart),
		}}}})
	if err != nil {
		h.log().Error("metrics line not written", "error", err)
	}
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}
