// Package emftest reads CloudWatch Embedded Metric Format lines back for
// tests, checking each against the specification on its own (it parses
// generic JSON, not shared/emf's types): the _aws metadata with a
// millisecond Timestamp and CloudWatchMetrics; each directive's Namespace,
// Dimensions (at most 30 keys per set, each a top-level string member) and
// Metrics (1 to 100, each with a Name, a known Unit if any, and a top-level
// member that is a number or an array of 1 to 100 numbers).
package emftest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Line is one checked EMF document.
type Line struct {
	Timestamp time.Time
	// Namespaces of its directives.
	Namespaces []string
	// Dimensions are the dimension members: key -> value.
	Dimensions map[string]string
	// Values of each metric (one or several).
	Values map[string][]float64
	// Units of each metric ("" when not given).
	Units map[string]string
	// Sets lists, per metric, the dimension sets it is extracted under.
	Sets map[string][][]string
}

// Value returns the single value of metric name, failing t when it has
// none or several.
func (l Line) Value(t testing.TB, name string) float64 {
	t.Helper()
	v, ok := l.Values[name]
	if !ok || len(v) != 1 {
		t.Fatalf("metric %s: values %v, want exactly one", name, v)
	}
	return v[0]
}

var units = []string{"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
	"Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second",
	"Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
	"Gigabits/Second", "Terabits/Second", "Count/Second", "None"}

// Check parses one line and returns what it says, or why it breaks the
// specification.
func Check(line []byte) (Line, error) {
	var root map[string]json.RawMessage
	if err := json.Unmarshal(line, &root); err != nil {
		return Line{}, fmt.Errorf("not a JSON object: %v", err)
	}
	var meta struct {
		Timestamp         *json.Number `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  *string    `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name *string `json:"Name"`
				Unit *string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	}
	raw, ok := root["_aws"]
	if !ok {
		return Line{}, fmt.Errorf("no _aws member")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&meta); err != nil {
		return Line{}, fmt.Errorf("_aws: %v", err)
	}
	if meta.Timestamp == nil {
		return Line{}, fmt.Errorf("_aws.Timestamp missing")
	}
	ms, err := meta.Timestamp.Int64()
	if err != nil || ms < 1e12 {
		return Line{}, fmt.Errorf("_aws.Timestamp %v is not milliseconds since the epoch", meta.Timestamp)
	}
	if len(meta.CloudWatchMetrics) == 0 {
		return Line{}, fmt.Errorf("_aws.CloudWatchMetrics is empty")
	}
	out := Line{Timestamp: time.UnixMilli(ms), Dimensions: map[string]string{}, Values: map[string][]float64{},
		Units: map[string]string{}, Sets: map[string][][]string{}}
	for i, d := range meta.CloudWatchMetrics {
		if d.Namespace == nil || *d.Namespace == "" {
			return Line{}, fmt.Errorf("directive %d: no Namespace", i)
		}
		out.Namespaces = append(out.Namespaces, *d.Namespace)
		if d.Dimensions == nil {
			return Line{}, fmt.Errorf("directive %d: no Dimensions", i)
		}
		for _, set := range d.Dimensions {
			if len(set) > 30 {
				return Line{}, fmt.Errorf("directive %d: a dimension set of %d keys", i, len(set))
			}
			for _, k := range set {
				var v string
				if err := json.Unmarshal(root[k], &v); err != nil || v == "" {
					return Line{}, fmt.Errorf("dimension %q is not a top-level string member", k)
				}
				out.Dimensions[k] = v
			}
		}
		if len(d.Metrics) == 0 || len(d.Metrics) > 100 {
			return Line{}, fmt.Errorf("directive %d: %d metrics", i, len(d.Metrics))
		}
		for _, m := range d.Metrics {
			if m.Name == nil || *m.Name == "" {
				return Line{}, fmt.Errorf("directive %d: a metric without Name", i)
			}
			name := *m.Name
			if m.Unit != nil {
				if !slices.Contains(units, *m.Unit) {
					return Line{}, fmt.Errorf("metric %s: unit %q", name, *m.Unit)
				}
				out.Units[name] = *m.Unit
			}
			member, ok := root[name]
			if !ok {
				return Line{}, fmt.Errorf("metric %s has no top-level member", name)
			}
			var one float64
			var many []float64
			switch {
			case json.Unmarshal(member, &one) == nil:
				many = []float64{one}
			case json.Unmarshal(member, &many) == nil:
				if len(many) == 0 || len(many) > 100 {
					return Line{}, fmt.Errorf("metric %s: %d values", name, len(many))
				}
			default:
				return Line{}, fmt.Errorf("metric %s: %s is neither a number nor an array of numbers", name, member)
			}
			out.Values[name] = many
			out.Sets[name] = append(out.Sets[name], d.Dimensions...)
		}
	}
	return out, nil
}

// Lines checks every non-empty line of out, failing t on the first that
// breaks the specification.
func Lines(t testing.TB, out []byte) []Line {
	t.Helper()
	var lines []Line
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		l, err := Check(sc.Bytes())
		if err != nil {
			t.Fatalf("EMF line breaks the specification: %v\n%s", err, sc.Bytes())
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// Sum adds the values of metric name over the lines whose dimensions
// include dims.
func Sum(lines []Line, name string, dims map[string]string) float64 {
	var total float64
next:
	for _, l := range lines {
		for k, v := range dims {
			if l.Dimensions[k] != v {
				continue next
			}
		}
		for _, v := range l.Values[name] {
			total += v
		}
	}
	return total
}
