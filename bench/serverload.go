package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// healthBody is the request of the load rows: get_health, the cheapest
// method, so that what is around it (TLS, HTTP, the auth chain, JSON-RPC,
// the access line) is all there is to measure.
const healthBody = `{"jsonrpc":"2.0","method":"get_health","id":1}`

// authMode is one way the bench build of the agent authenticates POST
// /message (CA_A2A_BENCH_AUTH).
type authMode struct {
	name, env string
}

var authModes = []authMode{{"auth", ""}, {"bypass", "bypass"}, {"naive", "naive"}}

// serverCPU is what one mode's agent process spent.
type serverCPU struct {
	cpu      time.Duration
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

// serverCPURows measures the agent alone (rows 10a, 10b): the bench build of
// cmd/agent as three processes, one per way of authenticating, each
// loaded by a `bench load` process of its own with the same request, and
// each process's CPU time read from /proc/<pid>/stat over its measured
// windows, which alternate between the three. Then the agent's memory
// under a paced load (row 11), on the production build.
func serverCPURows(ctx context.Context, tb testing.TB, o Options, bins *binaries) []Row {
	b := bins.get(tb)
	f := NewFixture(tb)
	fl := f.WriteFiles(tb, agentapi.Validator)
	cert, key := fl.LeafPaths(agentapi.Lambda)
	type target struct {
		mode authMode
		proc *Process
		load *loadProcess
		acc  serverCPU
	}
	var targets []*target
	for _, m := range authModes {
		env := f.AgentEnv(fl, agentapi.Validator, freePort(tb))
		if m.env != "" {
			env["CA_A2A_BENCH_AUTH"] = m.env
		}
		p := f.StartProcess(tb, b.BenchAgent, env)
		targets = append(targets, &target{mode: m, proc: p})
	}
	// Each process answers the request, and only the bypass answers one
	// without a token: the three measure what they say.
	client := f.HTTPClient(tb, agentapi.Validator, 1)
	token := f.readToken(tb, fl)
	for _, t := range targets {
		for _, tok := range []string{token, ""} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.proc.URL+"/message", strings.NewReader(healthBody))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				tb.Fatalf("%s: %v", t.mode.name, err)
			}
			resp.Body.Close()
			want := http.StatusOK
			if tok == "" && t.mode.name != "bypass" {
				want = http.StatusUnauthorized
			}
			if resp.StatusCode != want {
				tb.Fatalf("%s agent, token %v: HTTP %d, want %d\n%s", t.mode.name, tok != "", resp.StatusCode, want, t.proc.Log())
			}
		}
		t.load = startLoad(tb, b.Load, LoadSpec{URL: t.proc.URL + "/message", Peer: agentapi.Validator, CertPath: cert, KeyPath: key,
			CAPath: fl.CA, TokenPath: fl.Token, Body: healthBody, Connections: o.Concurrency})
	}
	cmd := func(d time.Duration) LoadCommand {
		return LoadCommand{Duration: d, Concurrency: o.Concurrency, MaxRequests: o.MaxRequests}
	}
	for _, t := range targets {
		if _, err := t.load.run(cmd(max(o.Warmup, 50*time.Millisecond))); err != nil {
			tb.Fatalf("%s warm-up: %v", t.mode.name, err)
		}
	}
	rounds := max(o.ProcessRounds, 1)
	per := o.ProcessDuration / time.Duration(rounds)
	for r := 0; r < rounds && ctx.Err() == nil; r++ {
		for i := range targets {
			t := targets[(i+r)%len(targets)] // each starts a round in turn
			c0 := t.proc.CPU(tb)
			res, err := t.load.run(cmd(per))
			c1 := t.proc.CPU(tb)
			if err != nil {
				tb.Fatalf("%s: %v", t.mode.name, err)
			}
			t.acc.cpu += c1.Sub(c0).Total()
			t.acc.ok += res.Requests - res.Errors
			t.acc.errs += res.Errors
			t.acc.elapsed += res.Elapsed
			t.acc.lat = append(t.acc.lat, res)
			if res.Errors > 0 && t.acc.first == "" {
				t.acc.first = res.FirstError
			}
		}
	}
	auth, bypass, naive := targets[0].acc, targets[1].acc, targets[2].acc
	for _, t := range targets {
		if t.acc.errs > 0 {
			tb.Logf("%s: %d requests failed, first: %s", t.mode.name, t.acc.errs, t.acc.first)
		}
		if t.acc.ok == 0 || t.acc.cpu == 0 {
			tb.Fatalf("%s: %d requests answered, %s of CPU: nothing measured", t.mode.name, t.acc.ok, t.acc.cpu)
		}
	}
	values := map[string]float64{}
	for _, t := range targets {
		values[t.mode.name+"_cpu_us_per_request"] = us(t.acc.perRequest())
		values[t.mode.name+"_cpu_s"] = t.acc.cpu.Seconds()
		values[t.mode.name+"_requests"] = float64(t.acc.ok)
		values[t.mode.name+"_errors"] = float64(t.acc.errs)
		values[t.mode.name+"_rps"] = t.acc.rps()
		values[t.mode.name+"_p50_ms"], values[t.mode.name+"_p99_ms"] = medianLatency(t.acc.lat)
	}
	text := func(name string, s serverCPU) string {
		p50, p99 := medianLatency(s.lat)
		return fmt.Sprintf("%s %.1f µs CPU/request (%d requests, %.2f s CPU, %.0f req/s, p50 %.2f ms, p99 %.2f ms)",
			name, us(s.perRequest()), s.ok, s.cpu.Seconds(), s.rps(), p50, p99)
	}
	rowA := Row{ID: "10a", Title: "server CPU per request: auth on vs bypassed, agent process alone (cached token)",
		Of:     "agent CPU µs/request (utime+stime from /proc/<pid>/stat) with the token check ÷ with it bypassed (bench build, same binary and request)",
		Target: "<= 1.05", Ratio: ratio(float64(auth.perRequest()), float64(bypass.perRequest())),
		Detail: fmt.Sprintf("%s; %s; the check itself %.1f µs/request", text("on", auth), text("bypassed", bypass), us(auth.perRequest()-bypass.perRequest())),
		Values: values}
	if rowA.Ratio != nil {
		rowA.Met = met(*rowA.Ratio <= 1.05)
	}
	rowB := Row{ID: "10b", Title: "server CPU per request: our chain vs the naive check (jwt ParseWithClaims + keyfunc per request, no cache)",
		Of:     "agent CPU µs/request, our chain with a cached token ÷ a hand-written check verifying the signature on every request",
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
	p := f.StartProcess(tb, b.Agent, f.AgentEnv(fl, agentapi.Validator, freePort(tb)))
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
