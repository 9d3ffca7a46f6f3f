package metrics

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/emf"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// maxSamples bounds the latency values kept per method between two
// flushes: the most one EMF line may carry. Beyond it the samples are a
// uniform random sample of the period's calls (reservoir sampling), so the
// percentiles CloudWatch computes from them stay representative while the
// memory and the line stay bounded.
const maxSamples = emf.MaxValues

type reservoir struct {
	mu   sync.Mutex
	seen int64
	vals [maxSamples]float64
}

func (r *reservoir) add(v float64) {
	r.mu.Lock()
	r.seen++
	if r.seen <= maxSamples {
		r.vals[r.seen-1] = v
	} else if j := rand.Int64N(r.seen); j < maxSamples {
		r.vals[j] = v
	}
	r.mu.Unlock()
}

// take returns the samples since the last take and starts a new period.
func (r *reservoir) take() []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]float64(nil), r.vals[:min(r.seen, maxSamples)]...)
	r.seen = 0
	return out
}

// snapshot holds the counter values of the last flush: EMF carries deltas.
type snapshot struct {
	requests [][]float64 // [method][code]
	refusals []float64   // in the order of a.reasons
	killed   float64
}

// Run writes the EMF lines every Interval and checks the certificates'
// expiry until ctx ends, then writes the last lines and returns. Start it
// once, and end it after the server has drained its requests, so the last
// flush counts them all.
func (a *Agent) Run(ctx context.Context) {
	if a == nil {
		return
	}
	a.flushMu.Lock()
	a.checkExpiry(a.opts.Now())
	a.flushMu.Unlock()
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.Flush()
			return
		case <-t.C:
			a.Flush()
		}
	}
}

// Flush writes one EMF line per method called, per refusal reason seen and
// one for the agent (certificate days to expiry, internal errors, workers
// killed), each with the counts since the previous flush; a count that did
// not change is left out. It also runs the certificate expiry check.
func (a *Agent) Flush() {
	if a == nil {
		return
	}
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	now := a.opts.Now()
	a.checkExpiry(now)
	if a.emf == nil {
		return
	}
	if a.last.requests == nil {
		a.last.requests = make([][]float64, len(a.methods))
		for i := range a.last.requests {
			a.last.requests[i] = make([]float64, len(codes)+1)
		}
		a.last.refusals = make([]float64, len(a.reasons))
	}
	doc := func(dims map[string]string) emf.Document {
		dims[agentapi.DimensionAgent] = a.opts.Agent
		return emf.Document{Namespace: agentapi.MetricsNamespace, Timestamp: now, Dimensions: dims}
	}
	agentOnly := [][]string{{agentapi.DimensionAgent}}
	var docs []emf.Document
	var agentMetrics []emf.Metric
	internalIdx := codeIndex(jsonrpc.CodeInternalError)
	var internal float64
	for i, m := range a.methods {
		var n float64
		for j, c := range a.requests[i] {
			v := counterValue(c)
			d := v - a.last.requests[i][j]
			a.last.requests[i][j] = v
			n += d
			if j == internalIdx {
				internal += d
			}
		}
		samples := a.samples[i].take()
		if i == len(a.methods)-1 {
			// Other is not a method: its calls count for the agent only.
			if n > 0 {
				agentMetrics = append(agentMetrics, emf.Metric{Name: agentapi.MetricRequests, Unit: emf.Count, Values: []float64{n}})
			}
			continue
		}
		d := doc(map[string]string{agentapi.DimensionMethod: m})
		if n > 0 {
			d.Directives = append(d.Directives, emf.Directive{
				Dimensions: [][]string{{agentapi.DimensionAgent}, {agentapi.DimensionAgent, agentapi.DimensionMethod}},
				Metrics:    []emf.Metric{{Name: agentapi.MetricRequests, Unit: emf.Count, Values: []float64{n}}}})
		}
		if len(samples) > 0 {
			d.Directives = append(d.Directives, emf.Directive{
				Dimensions: [][]string{{agentapi.DimensionAgent, agentapi.DimensionMethod}},
				Metrics:    []emf.Metric{{Name: agentapi.MetricLatency, Unit: emf.Milliseconds, Values: samples}}})
		}
		if len(d.Directives) > 0 {
			docs = append(docs, d)
		}
	}
	for i, r := range a.reasons {
		v := counterValue(a.refusals[r])
		n := v - a.last.refusals[i]
		a.last.refusals[i] = v
		if n > 0 {
			d := doc(map[string]string{agentapi.DimensionReason: r})
			d.Directives = []emf.Directive{{Dimensions: [][]string{{agentapi.DimensionAgent}, {agentapi.DimensionAgent, agentapi.DimensionReason}},
				Metrics: []emf.Metric{{Name: agentapi.MetricAuthRefusals, Unit: emf.Count, Values: []float64{n}}}}}
			docs = append(docs, d)
		}
	}
	if internal > 0 {
		agentMetrics = append(agentMetrics, emf.Metric{Name: agentapi.MetricInternalErrors, Unit: emf.Count, Values: []float64{internal}})
	}
	if stats := a.workers.Load(); stats != nil {
		v := float64((*stats)().Killed)
		if n := v - a.last.killed; n > 0 {
			agentMetrics = append(agentMetrics, emf.Metric{Name: agentapi.MetricExtractWorkersKilled, Unit: emf.Count, Values: []float64{n}})
		}
		a.last.killed = v
	}
	if a.opts.Certificate != nil {
		days := math.Inf(1)
		for _, e := range certificates(a.opts.Certificate.Bundle()) {
			days = min(days, DaysLeft(e.notAfter, now))
		}
		if !math.IsInf(days, 1) {
			agentMetrics = append(agentMetrics, emf.Metric{Name: agentapi.MetricCertificateDaysToExpiry, Unit: emf.None, Values: []float64{days}})
		}
	}
	if len(agentMetrics) > 0 {
		d := doc(map[string]string{})
		d.Directives = []emf.Directive{{Dimensions: agentOnly, Metrics: agentMetrics}}
		docs = append(docs, d)
	}
	if err := a.emf.Write(docs...); err != nil {
		a.log.Error("metrics: EMF lines not written", "error", err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
