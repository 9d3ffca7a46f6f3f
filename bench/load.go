package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// LoadResult is what one target gave under load.
type LoadResult struct {
	Requests uint64        `json:"requests"`
	Errors   uint64        `json:"errors"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	RPS      float64       `json:"rps"` // successful requests per second
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	// FirstError is one error vegeta saw, for the report.
	FirstError string `json:"first_error,omitempty"`
}

// LoadTarget is one endpoint to load and the client to load it with.
type LoadTarget struct {
	Name   string
	Client *http.Client
	Target vegeta.Target
}

// LoadOptions bound a load run in time and in count.
type LoadOptions struct {
	// Duration is the measured time per target, split over Rounds.
	Duration time.Duration
	// Rounds alternates the targets (A B A B ...) so that a slow spell of
	// the machine falls on both.
	Rounds int
	// Concurrency is the number of requests in flight, pinned: vegeta runs
	// exactly this many workers as fast as they can go.
	Concurrency int
	// MaxRequests bounds each attack whatever its duration.
	MaxRequests uint64
	// Warmup is run on each target before measuring (connections opened).
	Warmup time.Duration
	// Rate paces the requests (per second) instead of sending them as fast
	// as Concurrency allows; 0 does not pace.
	Rate int
}

// boundedPacer sends as fast as the workers allow and stops after max hits.
type boundedPacer struct{ max uint64 }

func (p boundedPacer) Pace(_ time.Duration, hits uint64) (time.Duration, bool) {
	return 0, hits >= p.max
}

func (p boundedPacer) Rate(time.Duration) float64 { return 0 }

type loadAcc struct {
	m       vegeta.Metrics
	elapsed time.Duration
	ok      uint64
	errs    uint64
	first   string
}

func attack(ctx context.Context, t LoadTarget, o LoadOptions, d time.Duration, acc *loadAcc) {
	atk := vegeta.NewAttacker(
		vegeta.Client(t.Client),
		vegeta.Workers(uint64(o.Concurrency)),
		vegeta.MaxWorkers(uint64(o.Concurrency)),
		vegeta.MaxBody(1<<20),
	)
	var pacer vegeta.Pacer = boundedPacer{max: o.MaxRequests}
	if o.Rate > 0 {
		pacer = vegeta.ConstantPacer{Freq: o.Rate, Per: time.Second}
	}
	start := time.Now()
	results := atk.Attack(vegeta.NewStaticTargeter(t.Target), pacer, d, t.Name)
	for {
		select {
		case <-ctx.Done():
			atk.Stop()
			for range results {
			}
			return
		case r, ok := <-results:
			if !ok {
				if acc != nil {
					acc.elapsed += time.Since(start)
				}
				return
			}
			if acc == nil {
				continue
			}
			acc.m.Add(r)
			if r.Code >= 200 && r.Code < 300 && r.Error == "" {
				acc.ok++
			} else {
				acc.errs++
				if acc.first == "" {
					acc.first = fmt.Sprintf("HTTP %d %s %s", r.Code, r.Error, strings.TrimSpace(string(r.Body)))
				}
			}
		}
	}
}

// Load measures each target for o.Duration with o.Concurrency requests in
// flight over keep-alive connections, alternating the targets in rounds.
func Load(ctx context.Context, targets []LoadTarget, o LoadOptions) []LoadResult {
	if o.Rounds < 1 {
		o.Rounds = 1
	}
	if o.MaxRequests == 0 {
		o.MaxRequests = 1 << 20
	}
	accs := make([]*loadAcc, len(targets))
	for i, t := range targets {
		accs[i] = &loadAcc{}
		if o.Warmup > 0 {
			attack(ctx, t, o, o.Warmup, nil)
		}
	}
	per := o.Duration / time.Duration(o.Rounds)
	for r := 0; r < o.Rounds && ctx.Err() == nil; r++ {
		for i, t := range targets {
			attack(ctx, t, o, per, accs[i])
		}
	}
	out := make([]LoadResult, len(targets))
	for i, a := range accs {
		a.m.Close()
		res := LoadResult{Requests: a.ok + a.errs, Errors: a.errs, Elapsed: a.elapsed, FirstError: a.first,
			P50: a.m.Latencies.Quantile(0.5), P99: a.m.Latencies.Quantile(0.99)}
		if a.elapsed > 0 {
			res.RPS = float64(a.ok) / a.elapsed.Seconds()
		}
		out[i] = res
	}
	return out
}

// probe sends one request of t and checks the answer contains want.
func probe(t LoadTarget, want string) error {
	req, err := t.Target.Request()
	if err != nil {
		return err
	}
	resp, err := t.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", t.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("%s: HTTP %d %s (want %q)", t.Name, resp.StatusCode, body, want)
	}
	return nil
}

// quantile is the q-quantile of ds (0 when empty), nearest rank, from a
// sorted copy.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
