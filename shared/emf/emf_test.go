package emf_test

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/testutil/emftest"
	"github.com/ca-a2a/ca-a2a/shared/emf"
)

var at = time.Date(2026, 11, 25, 8, 4, 22, 0, time.UTC)

func valid() emf.Document {
	return emf.Document{Namespace: "CaA2a", Timestamp: at, Dimensions: map[string]string{"Agent": "orchestrator", "Method": "process_document"},
		Directives: []emf.Directive{
			{Dimensions: [][]string{{"Agent"}, {"Agent", "Method"}}, Metrics: []emf.Metric{{Name: "Requests", Unit: emf.Count, Values: []float64{3}}}},
			{Dimensions: [][]string{{"Agent", "Method"}}, Metrics: []emf.Metric{{Name: "Latency", Unit: emf.Milliseconds, Values: []float64{1.5, 2, 250}}}},
		}}
}

// TestMarshalFollowsTheSpecification reads the line back with a parser of
// its own and checks every required member.
func TestMarshalFollowsTheSpecification(t *testing.T) {
	line, err := emf.Marshal(valid())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	l, err := emftest.Check(line)
	if err != nil {
		t.Fatalf("%v\n%s", err, line)
	}
	if !l.Timestamp.Equal(at) || !slices.Equal(l.Namespaces, []string{"CaA2a", "CaA2a"}) {
		t.Fatalf("timestamp %v namespaces %v", l.Timestamp, l.Namespaces)
	}
	if l.Dimensions["Agent"] != "orchestrator" || l.Dimensions["Method"] != "process_document" {
		t.Fatalf("dimensions %v", l.Dimensions)
	}
	if l.Value(t, "Requests") != 3 || !slices.Equal(l.Values["Latency"], []float64{1.5, 2, 250}) {
		t.Fatalf("values %v", l.Values)
	}
	if l.Units["Requests"] != "Count" || l.Units["Latency"] != "Milliseconds" {
		t.Fatalf("units %v", l.Units)
	}
	if len(l.Sets["Requests"]) != 2 || len(l.Sets["Latency"]) != 1 {
		t.Fatalf("dimension sets %v", l.Sets)
	}
	// The exact shape, pinned: the CDK alarms read these names.
	want := `{"Agent":"orchestrator","Latency":[1.5,2,250],"Method":"process_document","Requests":3,"_aws":{"Timestamp":1795593862000,` +
		`"CloudWatchMetrics":[{"Namespace":"CaA2a","Dimensions":[["Agent"],["Agent","Method"]],"Metrics":[{"Name":"Requests","Unit":"Count"}]},` +
		`{"Namespace":"CaA2a","Dimensions":[["Agent","Method"]],"Metrics":[{"Name":"Latency","Unit":"Milliseconds"}]}]}}` + "\n"
	if string(line) != want {
		t.Fatalf("line\n%s\nwant\n%s", line, want)
	}
}

func TestMarshalRefuses(t *testing.T) {
	many := func(n int) []float64 { return make([]float64, n) }
	manyMetrics := make([]emf.Metric, 101)
	for i := range manyMetrics {
		manyMetrics[i] = emf.Metric{Name: "m" + strings.Repeat("x", i), Unit: emf.Count, Values: []float64{1}}
	}
	wide := make([]string, 31)
	dims := map[string]string{}
	for i := range wide {
		wide[i] = "d" + strings.Repeat("x", i)
		dims[wide[i]] = "v"
	}
	tests := []struct {
		name string
		mod  func(d *emf.Document)
		want string
	}{
		{"no namespace", func(d *emf.Document) { d.Namespace = "" }, "namespace"},
		{"no timestamp", func(d *emf.Document) { d.Timestamp = time.Time{} }, "timestamp"},
		{"no directive", func(d *emf.Document) { d.Directives = nil }, "no directive"},
		{"directive without metrics", func(d *emf.Document) { d.Directives[0].Metrics = nil }, "1 to 100 metrics"},
		{"101 metrics", func(d *emf.Document) { d.Directives = []emf.Directive{{Metrics: manyMetrics}} }, "1 to 100 metrics"},
		{"31 dimensions in a set", func(d *emf.Document) {
			d.Dimensions = dims
			d.Directives = []emf.Directive{{Dimensions: [][]string{wide}, Metrics: []emf.Metric{{Name: "x", Values: []float64{1}}}}}
		}, "at most 30"},
		{"dimension without a value", func(d *emf.Document) { delete(d.Dimensions, "Method") }, `"Method" has no value`},
		{"empty dimension value", func(d *emf.Document) { d.Dimensions["Method"] = "" }, "value must be"},
		{"metric named like a dimension", func(d *emf.Document) { d.Directives[0].Metrics[0].Name = "Agent" }, "used twice"},
		{"metric named _aws", func(d *emf.Document) { d.Directives[0].Metrics[0].Name = "_aws" }, "used twice"},
		{"metric twice", func(d *emf.Document) { d.Directives[1].Metrics[0].Name = "Requests" }, "used twice"},
		{"unknown unit", func(d *emf.Document) { d.Directives[0].Metrics[0].Unit = "Requests" }, "unknown unit"},
		{"no value", func(d *emf.Document) { d.Directives[0].Metrics[0].Values = nil }, "1 to 100 values"},
		{"101 values", func(d *emf.Document) { d.Directives[1].Metrics[0].Values = many(101) }, "1 to 100 values"},
		{"NaN", func(d *emf.Document) { d.Directives[0].Metrics[0].Values = []float64{math.NaN()} }, "value NaN"},
		{"infinity", func(d *emf.Document) { d.Directives[0].Metrics[0].Values = []float64{math.Inf(1)} }, "value +Inf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := valid()
			tc.mod(&d)
			_, err := emf.Marshal(d)
			if !errors.Is(err, emf.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
	// The limits themselves are allowed.
	d := valid()
	d.Directives[1].Metrics[0].Values = many(100)
	if _, err := emf.Marshal(d); err != nil {
		t.Fatalf("100 values: %v", err)
	}
}

// TestWriterKeepsLinesWhole: concurrent writers never interleave lines, and
// an invalid document is skipped without stopping the others.
func TestWriterKeepsLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	w := emf.NewWriter(&buf)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if err := w.Write(valid()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if lines := emftest.Lines(t, buf.Bytes()); len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	buf.Reset()
	bad := valid()
	bad.Namespace = ""
	if err := w.Write(valid(), bad, valid()); err == nil {
		t.Fatal("invalid document written without error")
	}
	if lines := emftest.Lines(t, buf.Bytes()); len(lines) != 2 {
		t.Fatalf("%d lines, want the 2 valid ones", len(lines))
	}
}
