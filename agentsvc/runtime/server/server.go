// Package server is the HTTP surface every agent shares (docs/contract.md):
// POST /message behind the whole auth chain, GET /health, the agent card,
// GET /metrics, and 404 for anything else. An agent brings its skills; the server routes,
// authenticates, authorizes and answers.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/policy"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// Limits of docs/contract.md, HTTP routes. The body limit is the hop limit,
// agentapi.MaxBodyBytes.
const (
	MaxHeaderBytes    = 64 << 10
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 120 * time.Second
	// MaxBatch bounds the elements of one batch.
	MaxBatch = 100
	// MaxBatchResponseBytes bounds the answers of one batch: once the
	// next answer would pass it, that element and the ones after it are
	// answered agentapi.CodeTooLarge (the elements after it do not run),
	// so a small batch cannot make the agent build a huge answer.
	MaxBatchResponseBytes = 4 * agentapi.MaxBodyBytes
	// maxResultBytes bounds one call's encoded result: the largest answer
	// a caller reads, less room for the envelope and an id of a request of
	// at most the hop limit.
	maxResultBytes = agentapi.MaxResponseBytes - agentapi.MaxBodyBytes - 1<<10
)

// HealthCheck reports whether one dependency works.
type HealthCheck func(ctx context.Context) error

// DetailedCheck is a HealthCheck that also reports figures of the agent's
// own (the extractor's extract_workers: busy, total, killed_since_start),
// shown as the check's "details" in /health and get_health, failing or
// not. Details must not hold secrets or a dependency's error text.
type DetailedCheck func(ctx context.Context) (details any, err error)

// Agent is what an agent brings to the server.
type Agent struct {
	Name        string
	Description string
	Version     string
	// Methods are the agent's own methods; list_skills and get_health are
	// added by the server.
	Methods []skill.Method
	// Checks are run by /health and get_health.
	Checks map[string]HealthCheck
	// DetailedChecks are run with Checks; a name must not be in both.
	DetailedChecks map[string]DetailedCheck
}

// Offered lists what the policy decides on for this agent: the methods it
// answers (list_skills and get_health, which every agent offers, then its
// own) and the routes that need a caller identity but no token
// (agentapi.Routes). The policy file is checked against it.
func (a Agent) Offered() []string {
	return append(a.methodNames(), agentapi.Routes()...)
}

func (a Agent) methodNames() []string {
	out := []string{agentapi.MethodListSkills, agentapi.MethodGetHealth}
	for _, m := range a.Methods {
		out = append(out, m.Name)
	}
	return out
}

// Options configure a Server.
type Options struct {
	Agent    Agent
	Policy   *policy.Policy
	Verifier *binding.Verifier
	Logger   *slog.Logger
	// URL is the agent's base URL as callers name it,
	// https://<name>.ca-a2a.local:<port>: the agent card's url is its
	// JSON-RPC endpoint, URL + "/message".
	URL string
	// TokenURL is where callers get tokens (agent card).
	TokenURL string
	// HandlerTimeout bounds each method call (default 100s).
	HandlerTimeout time.Duration
	// Tasks bound the A2A tasks kept for tasks/get.
	Tasks TaskLimits
	// Metrics counts calls and refusals and serves GET /metrics; nil
	// counts nothing and answers /metrics with 404.
	Metrics *metrics.Agent
	// Certificate is the serving certificate, whose days to expiry /health
	// reports; nil leaves expires_in_days out.
	Certificate certload.Source
	// PeerCheck, when set, is asked on every request, before any route,
	// whether the client certificate chain the connection was opened with
	// may still be used (certload.CheckPeer: not expired, not revoked, its
	// CA still trusted). A refused request gets 401 and its connection is
	// closed, so no connection outlives its certificate.
	PeerCheck func(chain []*x509.Certificate) error
}

// Server serves one agent.
type Server struct {
	opts    Options
	log     *slog.Logger
	methods map[string]method
	metrics *metrics.Agent
	other   int // metrics index of a call to no offered method
	started time.Time
	mux     *http.ServeMux
	tasks   *taskStore

	healthMu   sync.Mutex
	healthAt   time.Time
	healthCode int
	healthBody agentapi.HealthReport
}

// New returns a Server for opts. A Verifier and a Policy are required: there
// is no unauthenticated mode.
func New(opts Options) (*Server, error) {
	if opts.Verifier == nil || opts.Policy == nil {
		return nil, errors.New("server: a verifier and a policy are required")
	}
	if opts.HandlerTimeout <= 0 {
		opts.HandlerTimeout = 100 * time.Second
	}
	if opts.Agent.Version == "" {
		opts.Agent.Version = Version
	}
	s := &Server{opts: opts, log: opts.Logger, methods: map[string]method{}, metrics: opts.Metrics, started: time.Now(),
		tasks: newTaskStore(opts.Tasks)}
	if s.log == nil {
		s.log = slog.Default()
	}
	for name := range opts.Agent.DetailedChecks {
		if _, dup := opts.Agent.Checks[name]; dup {
			return nil, errors.New("server: health check " + name + " defined twice")
		}
	}
	// Calls are counted by what the policy authorizes: the method, or the
	// skill a message/send runs; tasks/get is the one A2A envelope counted
	// as itself.
	s.metrics.SetMethods(append(opts.Agent.methodNames(), agentapi.MethodA2AGetTask))
	s.other = s.metrics.Method(metrics.Other)
	for _, m := range append(s.builtins(), opts.Agent.Methods...) {
		if _, dup := s.methods[m.Name]; dup {
			return nil, errors.New("server: method " + m.Name + " defined twice")
		}
		s.methods[m.Name] = method{Method: m, metric: s.metrics.Method(m.Name)}
	}
	message, err := s.benchAuth()
	if err != nil {
		return nil, err
	}
	if message == nil { // always, but in a bench build
		message = s.opts.Verifier.Guard(s.serveMessage, s.writeUnauthorized)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /message", message)
	mux.HandleFunc("/health", s.serveHealth)
	mux.HandleFunc("/.well-known/agent-card.json", s.serveCard)
	mux.HandleFunc("/.well-known/agent.json", s.serveCard) // the name before A2A v0.3
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	s.mux = mux
	return s, nil
}

// method is an offered method and its metrics index.
type method struct {
	skill.Method
	metric int
}

// Handler returns the agent's HTTP handler. Each request is logged once,
// when it ends, with its id, caller, JSON-RPC method (and the skill a
// message/send ran, else ""), code, status and latency, and the reason code
// of a refusal; never its token or body.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &requestInfo{id: requestID(r), start: time.Now()}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		w.Header().Set("X-Request-Id", info.id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, info))
		if err := s.checkPeer(r); err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "client certificate refused on an open connection",
				slog.String("request_id", info.id), slog.String("remote", r.RemoteAddr), slog.String("reason", binding.Code(err)),
				slog.String("client_cert", r.TLS.PeerCertificates[0].Subject.String()),
				slog.String("serial", serialHex(r.TLS.PeerCertificates[0].SerialNumber)))
			s.refuseConnection(rec, r, err)
		} else {
			s.mux.ServeHTTP(rec, r)
		}
		if info.caller == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			info.caller = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		s.accessLog(r, rec.status, info)
	})
}

// accessLog writes the request's access line. It hands the record to the
// logger's handler itself: slog.Logger would also look up the caller's
// program counter (runtime.Callers) for a source the agents' handlers do
// not print, a tenth of the line's cost.
func (s *Server) accessLog(r *http.Request, status int, info *requestInfo) {
	ctx, h := r.Context(), s.log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	now := time.Now()
	rec := slog.NewRecord(now, slog.LevelInfo, "request", 0)
	rec.AddAttrs(
		slog.String("request_id", info.id), slog.String("http_method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.String("caller", info.caller), slog.String("method", info.method),
		slog.Int("code", info.code), slog.Int64("latency_ms", now.Sub(info.start).Milliseconds()), slog.String("skill", info.skill),
	)
	if info.reason != "" {
		rec.AddAttrs(slog.String("reason", info.reason))
	}
	_ = h.Handle(ctx, rec)
}

// checkPeer runs Options.PeerCheck on the request's client certificate.
func (s *Server) checkPeer(r *http.Request) error {
	if s.opts.PeerCheck == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return s.opts.PeerCheck(r.TLS.PeerCertificates)
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf("%X", n.Bytes())
}

// requestInfo collects what the access log line reports about a request.
// Only the goroutine serving the request writes it.
type requestInfo struct {
	id, caller, method string
	code               int
	// skill is what a single message/send ran (an offered method).
	skill string
	// reason is the reason code of a refusal (agentapi.Reasons).
	reason string
	start  time.Time
}

func infoOf(ctx context.Context) *requestInfo {
	if i, ok := ctx.Value(requestIDKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{start: time.Now()}
}

// HTTPServer returns an http.Server with the timeouts and limits of
// docs/contract.md, HTTP routes. tlsCfg nil serves plain HTTP (MTLS_ENABLED=false).
func (s *Server) HTTPServer(addr string, tlsCfg *tls.Config) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.Handler(),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: ReadHeaderTimeout, // bounds the TLS handshake too
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.opts.HandlerTimeout + 10*time.Second,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		// What the auth chain derives from a client certificate is
		// computed once per connection.
		ConnContext: binding.ConnContext,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

type requestIDKey struct{}

// RequestID returns the id of the request ctx belongs to.
func RequestID(ctx context.Context) string { return infoOf(ctx).id }

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); validRequestID.MatchString(id) {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Version is the agents' version, set at build time with
// -ldflags "-X github.com/ca-a2a/ca-a2a/agentsvc/runtime/server.Version=...".
var Version = "dev"
