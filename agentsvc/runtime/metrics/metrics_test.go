package metrics_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/testutil/emftest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// certs writes a CA (ten years), a second CA (a rotation in progress) and
// a validator leaf valid for days, and returns the validator's source.
func certs(t *testing.T, days int) certload.Source {
	t.Helper()
	dir := t.TempDir()
	if err := certgen.Generate(certgen.Options{Dir: dir, Agents: []string{"validator"}, Days: days}); err != nil {
		t.Fatal(err)
	}
	if err := certgen.RotateCA(certgen.RotateOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	cert, key := certgen.LeafPaths(dir, "validator")
	src, closeSrc, err := certload.Load(certload.Config{CertPath: cert, KeyPath: key, CAPath: certgen.BundlePath(dir)},
		certload.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeSrc() })
	return src
}

// caLabel is the cert label of a CA: its name and serial, since the two
// CAs of a rotation share their name.
func caLabel(ca *x509.Certificate) string {
	return fmt.Sprintf("ca:%s#%X", ca.Subject.CommonName, ca.SerialNumber)
}

// caLabels are the cert labels of src: serving and each CA, sorted.
func caLabels(src certload.Source) []string {
	out := []string{"serving"}
	for _, ca := range src.Bundle().CACerts {
		out = append(out, caLabel(ca))
	}
	sort.Strings(out)
	return out
}

type family struct {
	typ    dto.MetricType
	labels []string
}

// TestSeriesPinned pins every ca_a2a_* family an agent exposes: name, type
// and label names. Dashboards and the README name them.
func TestSeriesPinned(t *testing.T) {
	src := certs(t, 365)
	m := metrics.New(metrics.Options{Agent: "extractor", Certificate: src})
	m.SetMethods([]string{"list_skills", "get_health", "extract_document"})
	m.EnablePeerCalls()
	m.SetWorkers(func() metrics.Workers { return metrics.Workers{Busy: 1, Total: 4, Killed: 2} })
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]family{}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "ca_a2a_") {
			continue
		}
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		got[f.GetName()] = family{f.GetType(), labels}
	}
	want := map[string]family{
		"ca_a2a_auth_refusals_total":                  {dto.MetricType_COUNTER, []string{"reason"}},
		"ca_a2a_rpc_requests_total":                   {dto.MetricType_COUNTER, []string{"code", "method"}},
		"ca_a2a_rpc_duration_seconds":                 {dto.MetricType_HISTOGRAM, []string{"method"}},
		"ca_a2a_jwks_refreshes_total":                 {dto.MetricType_COUNTER, []string{"result"}},
		"ca_a2a_certificate_expiry_timestamp_seconds": {dto.MetricType_GAUGE, []string{"cert"}},
		"ca_a2a_peer_calls_total":                     {dto.MetricType_COUNTER, []string{"code", "peer"}},
		"ca_a2a_extract_workers_busy":                 {dto.MetricType_GAUGE, nil},
		"ca_a2a_extract_workers":                      {dto.MetricType_GAUGE, nil},
		"ca_a2a_extract_workers_killed_total":         {dto.MetricType_COUNTER, nil},
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if g.typ != w.typ || !slices.Equal(g.labels, w.labels) {
			t.Errorf("%s: %v %v, want %v %v", name, g.typ, g.labels, w.typ, w.labels)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("unexpected family %s", name)
	}
	// Every label value comes from a fixed set, all present from the start.
	values := func(name, label string) []string {
		var out []string
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, mt := range f.GetMetric() {
				for _, l := range mt.GetLabel() {
					if l.GetName() == label && !slices.Contains(out, l.GetValue()) {
						out = append(out, l.GetValue())
					}
				}
			}
		}
		sort.Strings(out)
		return out
	}
	sorted := func(s ...string) []string { sort.Strings(s); return s }
	codes := sorted("0", "-32700", "-32600", "-32601", "-32602", "-32603", "-32001", "-32002", "-32003", "-32010", "-32011", "-32012", "other")
	checks := []struct {
		name, label string
		want        []string
	}{
		{"ca_a2a_auth_refusals_total", "reason", sorted(agentapi.Reasons()...)},
		{"ca_a2a_rpc_requests_total", "method", sorted("list_skills", "get_health", "extract_document", "other")},
		{"ca_a2a_rpc_requests_total", "code", codes},
		{"ca_a2a_peer_calls_total", "peer", sorted("orchestrator", "extractor", "validator", "archivist", "other")},
		{"ca_a2a_peer_calls_total", "code", codes},
		{"ca_a2a_jwks_refreshes_total", "result", sorted("ok", "failed")},
		{"ca_a2a_certificate_expiry_timestamp_seconds", "cert", caLabels(src)},
	}
	for _, c := range checks {
		if got := values(c.name, c.label); !slices.Equal(got, c.want) {
			t.Errorf("%s{%s}: %v, want %v", c.name, c.label, got, c.want)
		}
	}
}

// TestLabelsStayBounded: values outside the fixed sets fold into "other"
// or are not counted; nothing adds a series.
func TestLabelsStayBounded(t *testing.T) {
	var logs syncbuf.Buffer
	m := metrics.New(metrics.Options{Agent: "orchestrator", Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	m.SetMethods([]string{"process_document"})
	m.EnablePeerCalls()
	series := func() int {
		fams, _ := m.Registry().Gather()
		n := 0
		for _, f := range fams {
			if strings.HasPrefix(f.GetName(), "ca_a2a_") {
				n += len(f.GetMetric())
			}
		}
		return n
	}
	before := series()
	m.ObserveCall(m.Method("DROP TABLE documents"), -31999, time.Millisecond)
	m.ObserveCall(m.Method("process_document"), 7, time.Millisecond)
	m.CallDone("mallory.example", "x", 12345, time.Millisecond)
	m.Refused("because")
	if after := series(); after != before {
		t.Fatalf("series %d -> %d", before, after)
	}
	text := scrape(t, m)
	for _, want := range []string{
		`ca_a2a_rpc_requests_total{code="other",method="other"} 1`,
		`ca_a2a_rpc_requests_total{code="other",method="process_document"} 1`,
		`ca_a2a_peer_calls_total{code="other",peer="other"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if c, _ := metrics.Counts(strings.NewReader(text), "ca_a2a_auth_refusals_total", "reason"); sum(c) != 0 {
		t.Errorf("an unknown reason was counted: %v", c)
	}
	if !strings.Contains(logs.String(), "unknown refusal reason") {
		t.Error("an unknown reason went unnoticed")
	}
}

func sum(m map[string]float64) (total float64) {
	for _, v := range m {
		total += v
	}
	return total
}

func scrape(t *testing.T, m *metrics.Agent) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape %d", rec.Code)
	}
	return rec.Body.String()
}

// TestCertificateExpiry: a gauge per certificate, the minimum days in the
// EMF line, and a warning under 30 days at most once a day.
func TestCertificateExpiry(t *testing.T) {
	src := certs(t, 10) // the leaf expires in 10 days; the CAs in years
	var logs, out syncbuf.Buffer
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	m := metrics.New(metrics.Options{Agent: "validator", Certificate: src, EMF: &out,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return time.Unix(0, now.Load()) }})
	exp, err := metrics.Counts(strings.NewReader(scrape(t, m)), "ca_a2a_certificate_expiry_timestamp_seconds", "cert")
	if err != nil {
		t.Fatal(err)
	}
	b := src.Bundle()
	labels := caLabels(src)
	if exp["serving"] != float64(b.Leaf().NotAfter.Unix()) || len(exp) != 3 || len(labels) != 3 ||
		exp[caLabel(b.CACerts[0])] != float64(b.CACerts[0].NotAfter.Unix()) || exp[caLabel(b.CACerts[1])] != float64(b.CACerts[1].NotAfter.Unix()) {
		t.Fatalf("expiry gauges %v", exp)
	}

	warnings := func() int { return strings.Count(logs.String(), `"msg":"certificate expires soon`) }
	m.Flush()
	m.Flush()
	if warnings() != 1 || !strings.Contains(logs.String(), `"cert":"serving"`) || !strings.Contains(logs.String(), `"expires_in_days":9`) {
		t.Fatalf("%d warnings after two checks, want 1:\n%s", warnings(), logs.String())
	}
	now.Add(int64(23 * time.Hour))
	m.Flush()
	if warnings() != 1 {
		t.Fatalf("warned again within the day:\n%s", logs.String())
	}
	now.Add(int64(2 * time.Hour))
	m.Flush()
	if warnings() != 2 {
		t.Fatalf("no warning the next day:\n%s", logs.String())
	}
	for _, l := range emftest.Lines(t, []byte(out.String())) {
		days := l.Value(t, agentapi.MetricCertificateDaysToExpiry)
		if days <= 8 || days >= 10 || l.Units[agentapi.MetricCertificateDaysToExpiry] != "None" {
			t.Fatalf("CertificateDaysToExpiry %v (unit %q), want between 8 and 10", days, l.Units[agentapi.MetricCertificateDaysToExpiry])
		}
		if fmt.Sprint(l.Sets[agentapi.MetricCertificateDaysToExpiry]) != "[[Agent]]" || l.Namespaces[0] != "CaA2a" {
			t.Fatalf("line %+v", l)
		}
	}

	// A certificate far from its expiry: no warning.
	var quiet syncbuf.Buffer
	far := metrics.New(metrics.Options{Agent: "validator", Certificate: certs(t, 365), Logger: slog.New(slog.NewJSONHandler(&quiet, nil))})
	far.Flush()
	if strings.Contains(quiet.String(), "expires soon") {
		t.Fatalf("warned for a certificate a year away:\n%s", quiet.String())
	}
}

// TestFlush: counts become deltas, latency samples stay within one line
// whatever the number of calls, and the extractor's killed workers and the
// peer calls are carried.
func TestFlush(t *testing.T) {
	var out bytes.Buffer
	var killed atomic.Uint64
	m := metrics.New(metrics.Options{Agent: "extractor", EMF: &out})
	m.SetMethods([]string{"extract_document"})
	m.SetWorkers(func() metrics.Workers { return metrics.Workers{Busy: 0, Total: 4, Killed: killed.Load()} })
	ex := m.Method("extract_document")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 250 {
				m.ObserveCall(ex, 0, time.Duration(i)*time.Millisecond)
			}
		})
	}
	wg.Wait()
	m.Refused(agentapi.ReasonBindingMismatch)
	killed.Store(3)
	m.Flush()
	lines := emftest.Lines(t, out.Bytes())
	if got := emftest.Sum(lines, "Requests", map[string]string{"Method": "extract_document"}); got != 1000 {
		t.Fatalf("Requests %v, want 1000", got)
	}
	for _, l := range lines {
		if v, ok := l.Values["Latency"]; ok && (len(v) != 100 || slices.Max(v) > 249) {
			t.Fatalf("latency values: %d, max %v; want 100 samples of the calls", len(v), slices.Max(v))
		}
	}
	if emftest.Sum(lines, "AuthRefusals", map[string]string{"Reason": "binding_mismatch"}) != 1 ||
		emftest.Sum(lines, "ExtractWorkersKilled", nil) != 3 {
		t.Fatalf("refusals or killed workers missing:\n%s", out.String())
	}
	out.Reset()
	killed.Store(5)
	m.ObserveCall(ex, -32602, time.Millisecond)
	m.Flush()
	lines = emftest.Lines(t, out.Bytes())
	if emftest.Sum(lines, "Requests", nil) != 1 || emftest.Sum(lines, "ExtractWorkersKilled", nil) != 2 ||
		emftest.Sum(lines, "AuthRefusals", nil) != 0 || emftest.Sum(lines, "Latency", nil) != 1 {
		t.Fatalf("second flush is not the delta:\n%s", out.String())
	}
	out.Reset()
	m.Flush()
	if out.Len() != 0 {
		t.Fatalf("nothing changed, yet:\n%s", out.String())
	}
}

// TestRunFlushesAtTheEnd: Run writes on its interval and once more when
// its context ends, then returns.
func TestRunFlushesAtTheEnd(t *testing.T) {
	var out syncbuf.Buffer
	m := metrics.New(metrics.Options{Agent: "archivist", EMF: &out, Interval: time.Hour})
	m.SetMethods([]string{"get_document"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	m.ObserveCall(m.Method("get_document"), 0, time.Millisecond)
	cancel()
	<-done
	if got := emftest.Sum(emftest.Lines(t, []byte(out.String())), "Requests", nil); got != 1 {
		t.Fatalf("Requests at shutdown %v:\n%s", got, out.String())
	}
}

// TestNilAgent: a server without metrics calls a nil *Agent.
func TestNilAgent(t *testing.T) {
	var m *metrics.Agent
	m.SetMethods([]string{"x"})
	m.ObserveCall(m.Method("x"), 0, time.Second)
	m.Refused(agentapi.ReasonExpired)
	m.JWKSRefreshed(errors.New("down"))
	m.CallDone("extractor", "x", 0, time.Second)
	m.Flush()
	m.Run(t.Context())
}
