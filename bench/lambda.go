package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/lambda"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// Secret ids: the Lambda's defaults (docs/configuration.md, Lambda).
var secretIDs = certload.SecretIDs{Cert: "ca-a2a/lambda-cert", Key: "ca-a2a/lambda-key", CA: "ca-a2a/ca-cert"}

// countingSecrets counts BatchGetSecretValue calls on the way to the real
// client.
type countingSecrets struct {
	api   certload.BatchGetSecretValueAPI
	calls atomic.Int64
}

func (c *countingSecrets) BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	c.calls.Add(1)
	return c.api.BatchGetSecretValue(ctx, in, optFns...)
}

// memorySecrets answers BatchGetSecretValue from a map, for runs without
// moto_server (short tests). The count is the same: it is the Lambda's
// calls that are counted, not the server's work.
type memorySecrets map[string]string

func (m memorySecrets) BatchGetSecretValue(_ context.Context, in *secretsmanager.BatchGetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	out := &secretsmanager.BatchGetSecretValueOutput{}
	for _, id := range in.SecretIdList {
		v, ok := m[id]
		if !ok {
			return nil, errors.New("memorySecrets: no secret " + id)
		}
		out.SecretValues = append(out.SecretValues, smtypes.SecretValueEntry{Name: aws.String(id), ARN: aws.String("arn:" + id), SecretString: aws.String(v)})
	}
	return out, nil
}

// SecretsBackend says where the Lambda's secrets come from.
type SecretsBackend int

// Backends.
const (
	SecretsMemory SecretsBackend = iota
	SecretsMoto
)

// secretsAPI stores the Lambda's certificate, key and CA and returns the
// API the Lambda reads them with, and a note on where they live.
func secretsAPI(ctx context.Context, tb testing.TB, f *Fixture, backend SecretsBackend) (certload.BatchGetSecretValueAPI, string) {
	values := map[string]string{secretIDs.Cert: string(f.Client.CertPEM), secretIDs.Key: string(f.Client.KeyPEM), secretIDs.CA: string(f.CA.PEM)}
	if backend == SecretsMemory {
		return memorySecrets(values), "in-memory Secrets Manager stand-in"
	}
	endpoint := moto.Start(tb)
	client := secretsmanager.New(secretsmanager.Options{
		Region:       "eu-west-3",
		BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		}),
	})
	for id, v := range values {
		if _, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(v)}); err != nil {
			tb.Fatalf("moto: create %s: %v", id, err)
		}
	}
	return client, "moto_server " + endpoint
}

// LambdaCounts are the network round trips of one phase of the Lambda.
type LambdaCounts struct {
	SecretsCalls  int64 `json:"secrets_calls"`
	TokenRequests int64 `json:"token_requests"`
	Handshakes    int64 `json:"handshakes"`
}

// LambdaResult are the counts cold (init and first invocation) and warm
// (the next invocation), and the fan-out timings.
type LambdaResult struct {
	Secrets string       `json:"secrets"`
	Cold    LambdaCounts `json:"cold"`
	Warm    LambdaCounts `json:"warm"`
	// IdPTokenRequests is the identity provider's own count over both
	// phases, a cross-check of Runtime.Tokens.Fetches.
	IdPTokenRequests int `json:"idp_token_requests"`

	Delay      time.Duration     `json:"delay_ns"`
	Reps       int               `json:"reps"`
	One        time.Duration     `json:"one_ns"`
	Batch      map[int]FanoutRun `json:"batch"` // by FANOUT_CONCURRENCY
	BatchSize  int               `json:"batch_size"`
	Concurrent []int             `json:"concurrency"`
}

// FanoutRun is the median time of one SQS batch at one concurrency.
type FanoutRun struct {
	Median time.Duration `json:"median_ns"`
}

// LambdaOptions configure Lambda.
type LambdaOptions struct {
	Secrets SecretsBackend
	// Delay is added by the orchestrator to every process_document.
	Delay time.Duration
	// Reps of each fan-out measurement; the median is kept.
	Reps int
	// BatchSize is the number of documents of the batch (SQS's default
	// batch size is 10).
	BatchSize int
}

// Lambda builds the real Lambda runtime (lambda.New: one BatchGetSecretValue,
// the token source, the orchestrator client) against an orchestrator whose
// process_document sleeps o.Delay and answers "archived", over the real
// TLS and auth chain, and counts and times it.
func Lambda(ctx context.Context, tb testing.TB, f *Fixture, o LambdaOptions) LambdaResult {
	tb.Helper()
	orch := f.StartAgent(tb, agentapi.Orchestrator, skill.Method{
		Name: agentapi.MethodProcessDocument, Description: "sleeps, then answers archived",
		Handler: func(ctx context.Context, params json.RawMessage) (any, error) {
			var p agentapi.ProcessDocumentParams
			_ = json.Unmarshal(params, &p)
			select {
			case <-time.After(o.Delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return agentapi.ProcessResult{DocumentID: "doc-" + p.S3Key, S3Key: p.S3Key, Status: agentapi.StatusArchived}, nil
		},
	})
	api, where := secretsAPI(ctx, tb, f, o.Secrets)
	secrets := &countingSecrets{api: api}
	env := map[string]string{
		"OIDC_ISSUER":      tokens.Issuer,
		"OIDC_TOKEN_URL":   f.IdP.TokenURL,
		"ORCHESTRATOR_URL": orch.URL,
	}
	cfg, err := lambda.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		tb.Fatal(err)
	}
	var handshakes atomic.Int64
	idp0 := f.IdP.TokenRequests()
	snapshot := func(rt *lambda.Runtime) LambdaCounts {
		c := LambdaCounts{SecretsCalls: secrets.calls.Load(), Handshakes: handshakes.Load()}
		if rt != nil {
			c.TokenRequests = int64(rt.Tokens.Fetches())
		}
		return c
	}
	rt, err := lambda.New(ctx, cfg, lambda.Deps{SecretsManager: secrets, HandshakeCounter: &handshakes, Log: discardLog()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rt.Client.Close)
	invoke := func(n int) time.Duration {
		start := time.Now()
		resp, err := rt.Handler.HandleSQS(ctx, sqsBatch(n))
		d := time.Since(start)
		if err != nil || len(resp.BatchItemFailures) > 0 {
			tb.Fatalf("lambda: %d of %d messages failed: %v", len(resp.BatchItemFailures), n, err)
		}
		return d
	}
	invoke(1)
	cold := snapshot(rt)
	invoke(1)
	after := snapshot(rt)
	warm := LambdaCounts{SecretsCalls: after.SecretsCalls - cold.SecretsCalls,
		TokenRequests: after.TokenRequests - cold.TokenRequests, Handshakes: after.Handshakes - cold.Handshakes}
	out := LambdaResult{Secrets: where, Cold: cold, Warm: warm, IdPTokenRequests: f.IdP.TokenRequests() - idp0,
		Delay: o.Delay, Reps: o.Reps, BatchSize: o.BatchSize, Batch: map[int]FanoutRun{}}

	// Fan-out. One batch first so that the pool holds enough connections:
	// the measurement is concurrency, not handshakes.
	out.Concurrent = []int{o.BatchSize, cfg.Concurrency}
	if cfg.Concurrency == o.BatchSize {
		out.Concurrent = out.Concurrent[:1]
	}
	rt.Handler.Concurrency = o.BatchSize
	invoke(o.BatchSize)
	ones := make([]time.Duration, 0, o.Reps)
	batches := map[int][]time.Duration{}
	for i := 0; i < o.Reps && ctx.Err() == nil; i++ {
		ones = append(ones, invoke(1))
		for _, c := range out.Concurrent {
			rt.Handler.Concurrency = c
			batches[c] = append(batches[c], invoke(o.BatchSize))
		}
	}
	out.One = median(ones)
	for c, ds := range batches {
		out.Batch[c] = FanoutRun{Median: median(ds)}
	}
	return out
}

func sqsBatch(n int) events.SQSEvent {
	e := events.SQSEvent{}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"s3_key":"bench/doc-%d.pdf","bucket":"ca-a2a-documents"}`, i)
		e.Records = append(e.Records, events.SQSMessage{MessageId: "m-" + strconv.Itoa(i), Body: body, EventSource: "aws:sqs"})
	}
	return e
}
