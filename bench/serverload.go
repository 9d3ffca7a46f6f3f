package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// healthBody is the request of the load rows: get_health, the cheapest
// method, so that what is around it (TLS, HTTP, the auth chain, JSON-RPC,
// the access line) is all there is to measure.
const healthBody = `{"jsonrpc":"2.0","method":"get_health","id":1}`

// serverCPU is what one way of authenticating cost its agent process.
type serverCPU struct {
	cpu      time.Duration // /proc/<pid>/stat, utime + stime
	sched    time.Duration // /proc/<pid>/task/*/schedstat
	ok, errs uint64
	elapsed  time.Duration
	first    string
	lat      []LoadResult
}

func (s serverCPU) perRequest() time.Duration {
	if s.ok == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.ok)
}

func (s serverCPU) rps() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ok) / s.elapsed.Seconds()
}

// The ways the bench build authenticates in rows 10a and 10b.
const (
	modeAuth   = "auth"
	modeBypass = "bypass"
	modeNaive  = "naive"
)

// serverCPURows measures the agent alone (rows 10a, 10b), then its memory
// (row 11). The bench build of cmd/agent (the validator) runs as two
// processes: one with CA_A2A_BENCH_AUTH=switch, which checks tokens as
// production does or skips the check, as the harness signals it between
// windows (the same process, binary and connections measured both ways),
// and one with the naive check. Each is loaded by its own `bench load`
// process with the same request, one window at a time, the order of the
// windows alternating; each process's CPU time is read from
// /proc/<pid>/stat around each window (and, to the nanosecond, from its
// threads' schedstat, which resolves a window pair by pair).
func serverCPURows(ctx context.Context, tb testing.TB, o Options, bins *binaries) []Row {
	b := bins.get(tb)
	f := NewFixture(tb)
	fl := f.WriteFiles(tb, agentapi.Validator)
	cert, key := fl.LeafPaths(agentapi.Lambda)
	start := func(mode string) (*Process, *loadProcess) {
		env := f.AgentEnv(fl, agentapi.Validator, loopback.Port(tb))
		env["CA_A2A_BENCH_AUTH"] = mode
		p := f.StartProcess(tb, b.BenchAgent, env)
		return p, startLoad(tb, b.Load, LoadSpec{URL: p.URL + "/message", Peer: agentapi.Validator, CertPath: cert, KeyPath: key,
			CAPath: fl.CA, TokenPath: fl.Token, Body: healthBody, Connections: o.Concurrency})
	}
	sw, swLoad := start("switch")
	nv, nvLoad := start(modeNaive)
	client := f.HTTPClient(tb, agentapi.Validator, 1)
	token := f.readToken(tb, fl)
	post := func(p *Process, tok string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/message", strings.NewReader(healthBody))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			tb.Fatalf("%s: %v", p.Name, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// setMode switches the agent and waits until a request without a
	// token gets that mode's answer: 200 bypassed, 401 checked. So each
	// window measures what it says.
	setMode := func(mode string) {
		sig, want := syscall.SIGUSR2, http.StatusUnauthorized
		if mode == modeBypass {
			sig, want = syscall.SIGUSR1, http.StatusOK
		}
		if err := syscall.Kill(sw.Pid, sig); err != nil {
			tb.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); post(sw, "") != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				tb.Fatalf("the agent did not switch to %s\n%s", mode, sw.Log())
			}
		}
	}
	if post(sw, token) != http.StatusOK || post(nv, token) != http.StatusOK || post(nv, "") != http.StatusUnauthorized {
		tb.Fatalf("the agents do not answer as they should\n%s\n%s", sw.Log(), nv.Log())
	}
	cmd := func(d time.Duration) LoadCommand {
		return LoadCommand{Duration: d, Rate: o.ProcessRate, Concurrency: o.Concurrency, MaxRequests: o.MaxRequests}
	}
	acc := map[string]*serverCPU{modeAuth: {}, modeBypass: {}, modeNaive: {}}
	window := func(mode string, d time.Duration) time.Duration {
		p, l := sw, swLoad
		if mode == modeNaive {
			p, l = nv, nvLoad
		} else {
			setMode(mode)
		}
		c0 := p.CPU(tb)
		s0, err := SchedCPU(p.Pid)
		if err != nil {
			tb.Fatal(err)
		}
		res, err := l.run(cmd(d))
		if err != nil {
			tb.Fatalf("%s: %v", mode, err)
		}
		s1, err := SchedCPU(p.Pid)
		if err != nil {
			tb.Fatal(err)
		}
		a := acc[mode]
		a.cpu += p.CPU(tb).Sub(c0).Total()
		a.sched += s1 - s0
		ok := res.Requests - res.Errors
		a.ok += ok
		a.errs += res.Errors
		a.elapsed += res.Elapsed
		a.lat = append(a.lat, res)
		if res.Errors > 0 && a.first == "" {
			a.first = res.FirstError
		}
		if ok == 0 {
			return 0
		}
		return (s1 - s0) / time.Duration(ok)
	}
	warm := max(o.Warmup, 50*time.Millisecond)
	for _, m := range []string{modeAuth, modeBypass, modeNaive} {
		window(m, warm)
	}
	for _, a := range acc {
		*a = serverCPU{}
	}
	rounds := max(o.ProcessRounds, 1)
	per := o.ProcessDuration / time.Duration(rounds)
	var ratios []float64
	for r := 0; r < rounds && ctx.Err() == nil; r++ {
		first, second := modeAuth, modeBypass
		if r%2 == 1 {
			first, second = second, first
		}
		x, y := window(first, per), window(second, per)
		if r%2 == 1 {
			x, y = y, x
		}
		if y > 0 {
			ratios = append(ratios, float64(x)/float64(y))
		}
		window(modeNaive, per)
	}
	auth, bypass, naive := *acc[modeAuth], *acc[modeBypass], *acc[modeNaive]
	for m, a := range acc {
		if a.errs > 0 {
			tb.Logf("%s: %d requests failed, first: %s", m, a.errs, a.first)
		}
		if a.ok == 0 || a.cpu == 0 {
			tb.Fatalf("%s: %d requests answered, %s of CPU: nothing measured", m, a.ok, a.cpu)
		}
	}
	values := map[string]float64{"pair_ratio_median": medianOf(ratios), "pair_ratio_min": minOf(ratios), "pair_ratio_max": maxOf(ratios),
		"pairs": float64(len(ratios)), "rate": float64(o.ProcessRate)}
	for m, a := range acc {
		values[m+"_cpu_us_per_request"] = us(a.perRequest())
		values[m+"_sched_us_per_request"] = us(a.sched / time.Duration(max(a.ok, 1)))
		values[m+"_cpu_s"] = a.cpu.Seconds()
		values[m+"_requests"] = float64(a.ok)
		values[m+"_errors"] = float64(a.errs)
		values[m+"_rps"] = a.rps()
		values[m+"_p50_ms"], values[m+"_p99_ms"] = medianLatency(a.lat)
	}
	text := func(name string, s serverCPU) string {
		p50, p99 := medianLatency(s.lat)
		return fmt.Sprintf("%s %.1f µs CPU/request (%d requests, %.2f s CPU, %.0f req/s, p50 %.2f ms, p99 %.2f ms)",
			name, us(s.perRequest()), s.ok, s.cpu.Seconds(), s.rps(), p50, p99)
	}
	rowA := Row{ID: "10a", Title: "server CPU per request: token check on vs bypassed, the agent process alone (cached token)",
		Of:     "agent CPU µs/request (utime+stime, /proc/<pid>/stat) with the token check ÷ with it bypassed: one process of the bench build switched between windows, same request and connections",
		Target: "<= 1.05", Ratio: ratio(float64(auth.perRequest()), float64(bypass.perRequest())),
		Detail: fmt.Sprintf("%s; %s; difference %.1f µs/request; %d window pairs of %s each (schedstat, ns): median ratio %.3f, from %.3f to %.3f",
			text("on", auth), text("bypassed", bypass), us(auth.perRequest()-bypass.perRequest()), len(ratios), per,
			medianOf(ratios), minOf(ratios), maxOf(ratios)),
		Values: values}
	if rowA.Ratio != nil {
		rowA.Met = met(*rowA.Ratio <= 1.05)
	}
	rowB := Row{ID: "10b", Title: "server CPU per request: our chain vs the naive check (jwt ParseWithClaims + keyfunc per request, no cache)",
		Of:     "agent CPU µs/request, our chain with a cached token ÷ a hand-written check verifying the signature on every request (another process of the bench build, its windows between the others)",
		Ratio:  ratio(float64(auth.perRequest()), float64(naive.perRequest())),
		Detail: text("naive", naive) + fmt.Sprintf("; naive ÷ bypassed %.2f", float64(naive.perRequest())/max(float64(bypass.perRequest()), 1)),
		Values: values}
	return []Row{rowA, rowB, rssRow(ctx, tb, o, f, fl, b)}
}

// medianLatency is the median over windows of their p50 and p99, in ms.
func medianLatency(rs []LoadResult) (p50, p99 float64) {
	var a, b []float64
	for _, r := range rs {
		a, b = append(a, msf(r.P50)), append(b, msf(r.P99))
	}
	if len(a) == 0 {
		return 0, 0
	}
	return medianOf(a), medianOf(b)
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func (f *Fixture) readToken(tb testing.TB, fl Files) string {
	tb.Helper()
	b, err := os.ReadFile(fl.Token)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// rssRow measures the agent's memory (row 11): the production build of
// cmd/agent under a paced load of o.RSSRate requests per second (the same
// request) for o.RSSDuration, VmRSS sampled every 100 ms, VmHWM at the end.
func rssRow(ctx context.Context, tb testing.TB, o Options, f *Fixture, fl Files, b Binaries) Row {
	row := Row{ID: "11", Title: fmt.Sprintf("agent memory at %d req/s (get_health via POST /message, production build)", o.RSSRate),
		Of: "peak resident set of the agent process (max of VmRSS sampled every 100 ms and VmHWM at the end)", Target: "<= 40 MiB"}
	p := f.StartProcess(tb, b.Agent, f.AgentEnv(fl, agentapi.Validator, loopback.Port(tb)))
	cert, key := fl.LeafPaths(agentapi.Lambda)
	l := startLoad(tb, b.Load, LoadSpec{URL: p.URL + "/message", Peer: agentapi.Validator, CertPath: cert, KeyPath: key,
		CAPath: fl.CA, TokenPath: fl.Token, Body: healthBody, Connections: o.Concurrency})
	before, err := ReadMemory(p.Pid)
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	peak := before.RSS
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if m, err := ReadMemory(p.Pid); err == nil {
					mu.Lock()
					peak = max(peak, m.RSS)
					mu.Unlock()
				}
			}
		}
	})
	c0 := p.CPU(tb)
	res, err := l.run(LoadCommand{Duration: o.RSSDuration, Rate: o.RSSRate, Concurrency: o.Concurrency, MaxRequests: o.MaxRequests})
	c1 := p.CPU(tb)
	close(stop)
	wg.Wait()
	if err != nil {
		tb.Fatal(err)
	}
	after, err := ReadMemory(p.Pid)
	if err != nil {
		tb.Fatal(err)
	}
	top := max(peak, after.RSS, after.HWM)
	ok := res.Requests - res.Errors
	row.Met = met(top <= 40<<20)
	row.Detail = fmt.Sprintf("VmRSS %.1f MiB idle, at most %.1f MiB under load, VmHWM %.1f MiB; %d requests in %s (%.0f req/s, %d failed), p50 %.2f ms, p99 %.2f ms; %.1f µs CPU/request at this rate",
		mib(before.RSS), mib(max(peak, after.RSS)), mib(after.HWM), ok, res.Elapsed.Round(time.Millisecond), res.RPS, res.Errors,
		msf(res.P50), msf(res.P99), us(c1.Sub(c0).Total()/time.Duration(max(ok, 1))))
	row.Values = map[string]float64{"rss_idle_mib": mib(before.RSS), "rss_max_mib": mib(max(peak, after.RSS)), "hwm_mib": mib(after.HWM),
		"peak_mib": mib(top), "requests": float64(ok), "errors": float64(res.Errors), "rps": res.RPS, "rate": float64(o.RSSRate),
		"p50_ms": msf(res.P50), "p99_ms": msf(res.P99), "cpu_us_per_request": us(c1.Sub(c0).Total() / time.Duration(max(ok, 1)))}
	if res.Errors > 0 {
		tb.Logf("memory row: %d of %d requests failed, first: %s", res.Errors, res.Requests, res.FirstError)
	}
	return row
}
