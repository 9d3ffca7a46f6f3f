// Package metrics holds one agent's metrics (docs/operations.md, Metrics and
// dashboards): a Prometheus registry of its own, served at GET /metrics on
// the mTLS listener, and the same figures as CloudWatch Embedded Metric
// Format lines, written at most once a minute and at shutdown.
//
// Every label takes its values from a fixed set (the agent's methods, the
// JSON-RPC codes of the contract, the refusal reasons, the roster), so no
// caller, token or address can add a series. Counters are resolved once,
// when the agent starts: counting a call is an array index and an atomic
// add, never a label lookup.
package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/emf"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Other is the label value of a method, peer or code outside the fixed set.
const Other = "other"

// codes are the values of the code labels: 0 for success, then the codes
// of the contract (docs/contract.md, Error codes). Any other code counts
// as Other.
var codes = []int{0,
	jsonrpc.CodeParseError, jsonrpc.CodeInvalidRequest, jsonrpc.CodeMethodNotFound, jsonrpc.CodeInvalidParams, jsonrpc.CodeInternalError,
	agentapi.CodeNotFound, agentapi.CodeUnavailable, agentapi.CodeInvalidTransition,
	agentapi.CodeUnauthenticated, agentapi.CodeForbidden, agentapi.CodeTooLarge,
}

// codeIndex returns the position of code in codes, len(codes) for Other.
func codeIndex(code int) int {
	for i, c := range codes {
		if c == code {
			return i
		}
	}
	return len(codes)
}

func codeLabels() []string {
	out := make([]string, 0, len(codes)+1)
	for _, c := range codes {
		out = append(out, strconv.Itoa(c))
	}
	return append(out, Other)
}

// durationBuckets span a cached get_health (sub-millisecond) to a
// process_document near the 100 s handler timeout.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 100}

// Options configure an Agent's metrics.
type Options struct {
	// Agent is the agent's name (the EMF dimension Agent).
	Agent string
	// Certificate gives the serving certificate and the trusted CAs,
	// read at each scrape, flush and check, so a rotation shows at once.
	// Nil leaves out the expiry gauges and warnings.
	Certificate certload.Source
	// EMF receives the Embedded Metric Format lines (os.Stdout); nil
	// writes none.
	EMF io.Writer
	// Logger receives the certificate expiry warnings and EMF failures;
	// nil means slog.Default().
	Logger *slog.Logger
	// Interval is the time between two EMF flushes and expiry checks
	// (default one minute: CloudWatch's resolution for these metrics).
	Interval time.Duration
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
}

// Agent is the metrics of one agent. Its methods are safe for concurrent
// use, and do nothing on a nil *Agent, so that a server without metrics
// needs no branch of its own.
type Agent struct {
	opts Options
	log  *slog.Logger
	reg  *prometheus.Registry
	emf  *emf.Writer

	requestVec  *prometheus.CounterVec
	durationVec *prometheus.HistogramVec
	methods     []string       // label values: the offered methods, then Other
	methodIdx   map[string]int // read-only once serving
	requests    [][]prometheus.Counter
	durations   []prometheus.Observer
	samples     []reservoir // latency samples since the last flush (EMF only)

	reasons  []string
	refusals map[string]prometheus.Counter // read-only after New

	jwksOK, jwksFailed prometheus.Counter

	peers     []string
	peerCalls [][]prometheus.Counter

	workers atomic.Pointer[func() Workers]

	flushMu  sync.Mutex // one flush at a time; guards last and warned
	last     snapshot
	warned   map[string]time.Time // certificate label -> last expiry warning
	handler  http.Handler
	interval time.Duration
}

// Workers are the extractor's parse slots, as internal/sandbox's Pool.Stats
// reports them.
type Workers struct {
	Busy, Total int
	// Killed counts parses ended by a limit since the start.
	Killed uint64
}

// New builds the registry of one agent with every series at zero.
func New(opts Options) *Agent {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Agent{opts: opts, log: opts.Logger, reg: prometheus.NewRegistry(), warned: map[string]time.Time{},
		interval: opts.Interval}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.interval <= 0 {
		a.interval = time.Minute
	}
	if opts.EMF != nil {
		a.emf = emf.NewWriter(opts.EMF)
	}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a.requestVec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ca_a2a_rpc_requests_total",
		Help: "JSON-RPC calls answered (each element of a batch, refusals included), by method and JSON-RPC code (0 = success)."},
		[]string{"method", "code"})
	a.durationVec = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ca_a2a_rpc_duration_seconds",
		Help: "Time to answer one JSON-RPC call, by method.", Buckets: durationBuckets}, []string{"method"})
	a.reg.MustRegister(a.requestVec, a.durationVec)
	a.SetMethods(nil)

	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ca_a2a_auth_refusals_total",
		Help: "Refusals of the authentication chain, by reason code (docs/contract.md, Refusal reasons)."}, []string{"reason"})
	a.reg.MustRegister(refusals)
	a.reasons = agentapi.Reasons()
	a.refusals = make(map[string]prometheus.Counter, len(a.reasons))
	for _, r := range a.reasons {
		a.refusals[r] = refusals.WithLabelValues(r)
	}

	jwks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ca_a2a_jwks_refreshes_total",
		Help: "Fetches of the identity provider's JWKS (start-up, background, unknown kid), by result (ok, failed)."}, []string{"result"})
	a.reg.MustRegister(jwks)
	a.jwksOK, a.jwksFailed = jwks.WithLabelValues("ok"), jwks.WithLabelValues("failed")

	if opts.Certificate != nil {
		a.reg.MustRegister(&expiryCollector{src: opts.Certificate})
	}
	a.handler = promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{
		// A scrape is cheap but not free: a burst of them is answered 503
		// beyond this, never queued.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
		ErrorLog:            slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	})
	return a
}

// SetMethods sets the methods the agent offers (the server does, when it
// is built): any other name counts as Other. Call it before serving.
func (a *Agent) SetMethods(methods []string) {
	if a == nil {
		return
	}
	a.methods = append(slices.Clone(methods), Other)
	a.methodIdx = make(map[string]int, len(a.methods))
	for i, m := range a.methods {
		a.methodIdx[m] = i
	}
	a.requestVec.Reset()
	a.durationVec.Reset()
	a.requests = make([][]prometheus.Counter, len(a.methods))
	a.durations = make([]prometheus.Observer, len(a.methods))
	a.samples = make([]reservoir, len(a.methods))
	for i, m := range a.methods {
		for _, c := range codeLabels() {
			a.requests[i] = append(a.requests[i], a.requestVec.WithLabelValues(m, c))
		}
		a.durations[i] = a.durationVec.WithLabelValues(m)
	}
	a.last.requests = nil
}

// EnablePeerCalls adds ca_a2a_peer_calls_total{peer,code} (the
// orchestrator): peer is an agent of the roster or Other.
func (a *Agent) EnablePeerCalls() {
	if a == nil {
		return
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ca_a2a_peer_calls_total",
		Help: "Calls to peer agents, by peer and JSON-RPC code (0 = success), after the client's retries."}, []string{"peer", "code"})
	a.reg.MustRegister(vec)
	a.peers = append(agentapi.AgentNames(), Other)
	a.peerCalls = make([][]prometheus.Counter, len(a.peers))
	for i, p := range a.peers {
		for _, c := range codeLabels() {
			a.peerCalls[i] = append(a.peerCalls[i], vec.WithLabelValues(p, c))
		}
	}
}

// SetWorkers adds the extractor's worker gauges, read from stats at each
// scrape and flush: ca_a2a_extract_workers_busy, ca_a2a_extract_workers
// and ca_a2a_extract_workers_killed_total. Call it once, before serving.
func (a *Agent) SetWorkers(stats func() Workers) {
	if a == nil {
		return
	}
	a.workers.Store(&stats)
	a.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ca_a2a_extract_workers_busy",
			Help: "Extraction worker slots in use."}, func() float64 { return float64(stats().Busy) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ca_a2a_extract_workers",
			Help: "Extraction worker slots."}, func() float64 { return float64(stats().Total) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ca_a2a_extract_workers_killed_total",
			Help: "Sandboxed parses ended by a limit (time, memory, CPU, output)."}, func() float64 { return float64(stats().Killed) }),
	)
}

// Handler serves the registry in the Prometheus text format.
func (a *Agent) Handler() http.Handler { return a.handler }

// Registry is the agent's registry (tests read it).
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// Method returns the index of method for ObserveCall: its position among
// the offered methods, or that of Other.
func (a *Agent) Method(method string) int {
	if a == nil {
		return 0
	}
	if i, ok := a.methodIdx[method]; ok {
		return i
	}
	return len(a.methods) - 1
}

// ObserveCall counts one JSON-RPC call answered with code (0 for success)
// after elapsed. method comes from Method.
func (a *Agent) ObserveCall(method, code int, elapsed time.Duration) {
	if a == nil || method < 0 || method >= len(a.requests) {
		return
	}
	a.requests[method][codeIndex(code)].Inc()
	a.durations[method].Observe(elapsed.Seconds())
	if a.emf != nil {
		a.samples[method].add(float64(elapsed.Microseconds()) / 1000)
	}
}

// Refused counts one refusal with reason, one of agentapi.Reasons. Any
// other value is a bug: it is not counted, and logged.
func (a *Agent) Refused(reason string) {
	if a == nil {
		return
	}
	c, ok := a.refusals[reason]
	if !ok {
		a.log.Error("metrics: unknown refusal reason; not counted", "reason", reason)
		return
	}
	c.Inc()
}

// JWKSRefreshed counts one JWKS fetch (binding.KeySetOptions.OnRefresh).
func (a *Agent) JWKSRefreshed(err error) {
	if a == nil {
		return
	}
	if err != nil {
		a.jwksFailed.Inc()
		return
	}
	a.jwksOK.Inc()
}

// CallDone counts one call to a peer (agentclient.Observer). Without
// EnablePeerCalls it does nothing.
func (a *Agent) CallDone(peer, _ string, code int, _ time.Duration) {
	if a == nil || a.peerCalls == nil {
		return
	}
	i := slices.Index(a.peers, peer)
	if i < 0 {
		i = len(a.peers) - 1
	}
	a.peerCalls[i][codeIndex(code)].Inc()
}
