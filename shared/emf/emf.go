// Package emf encodes CloudWatch Embedded Metric Format documents: JSON
// log lines from which CloudWatch Logs extracts metrics, so a process that
// writes them to a log group needs no agent and no PutMetricData
// permission (docs/operations.md, Metrics and dashboards).
//
// It encodes one Document per line and refuses a document that breaks the
// specification's rules: the _aws metadata with Timestamp and
// CloudWatchMetrics, each directive's Namespace, Dimensions and Metrics
// (Name, Unit), every dimension key present as a top-level member, at most
// 100 metrics per directive, 30 keys per dimension set and 100 values per
// metric. What to emit and how often is the caller's business.
//
// Why not a library: AWS publishes its EMF libraries for other languages,
// not Go. Of the community ones, prozz/aws-embedded-metrics-golang has not
// changed since 2021, its maintained fork (dangrier/...) needs Go 1.27,
// newer than this module's toolchain, and udhos/aws-emf is pre-1.0. The
// format is small enough to write here and test against the specification
// (emf_test.go); moving to the fork once the toolchain allows is cheap, as
// only this package writes EMF.
package emf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// Limits of the specification.
const (
	MaxMetrics    = 100 // metric definitions in one directive
	MaxDimensions = 30  // keys in one dimension set
	MaxValues     = 100 // values of one metric in one document
	maxNameLen    = 255
	maxValueLen   = 1024
)

// Unit is a CloudWatch unit.
type Unit string

// The units this project uses.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	None         Unit = "None"
)

// Metric is one metric of a document: one value, or several samples
// (CloudWatch computes percentiles over the samples of a period).
type Metric struct {
	Name   string
	Unit   Unit
	Values []float64
}

// Directive is one MetricDirective: every metric is extracted once per
// dimension set. An empty dimension set is allowed (a metric without
// dimensions).
type Directive struct {
	Dimensions [][]string
	Metrics    []Metric
}

// Document is one EMF log event.
type Document struct {
	Namespace string
	Timestamp time.Time
	// Dimensions holds the value of every dimension key the directives
	// name; they become top-level members.
	Dimensions map[string]string
	Directives []Directive
}

// ErrInvalid: the document breaks the specification.
var ErrInvalid = errors.New("emf: invalid document")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

type metricDef struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit,omitempty"`
}

type directiveJSON struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []metricDef `json:"Metrics"`
}

type metadata struct {
	Timestamp         int64           `json:"Timestamp"`
	CloudWatchMetrics []directiveJSON `json:"CloudWatchMetrics"`
}

// Marshal encodes d as one line of JSON, newline included.
func Marshal(d Document) ([]byte, error) {
	if err := validName("namespace", d.Namespace); err != nil {
		return nil, err
	}
	if d.Timestamp.IsZero() {
		return nil, invalid("no timestamp")
	}
	if len(d.Directives) == 0 {
		return nil, invalid("no directive")
	}
	root := make(map[string]any, len(d.Dimensions)+8)
	for k, v := range d.Dimensions {
		if err := validName("dimension", k); err != nil {
			return nil, err
		}
		if v == "" || len(v) > maxValueLen {
			return nil, invalid("dimension %q: value must be 1 to %d bytes", k, maxValueLen)
		}
		root[k] = v
	}
	meta := metadata{Timestamp: d.Timestamp.UnixMilli()}
	for _, dir := range d.Directives {
		if len(dir.Metrics) == 0 || len(dir.Metrics) > MaxMetrics {
			return nil, invalid("a directive holds 1 to %d metrics, not %d", MaxMetrics, len(dir.Metrics))
		}
		dj := directiveJSON{Namespace: d.Namespace, Dimensions: dir.Dimensions}
		if dj.Dimensions == nil {
			dj.Dimensions = [][]string{}
		}
		for _, set := range dir.Dimensions {
			if len(set) > MaxDimensions {
				return nil, invalid("a dimension set holds at most %d keys, not %d", MaxDimensions, len(set))
			}
			for _, k := range set {
				if _, ok := d.Dimensions[k]; !ok {
					return nil, invalid("dimension %q has no value", k)
				}
			}
		}
		for _, m := range dir.Metrics {
			if err := validName("metric", m.Name); err != nil {
				return nil, err
			}
			if _, taken := root[m.Name]; taken || m.Name == "_aws" {
				return nil, invalid("metric %q: name used twice in one document", m.Name)
			}
			if !units[m.Unit] {
				return nil, invalid("metric %q: unknown unit %q", m.Name, m.Unit)
			}
			if len(m.Values) == 0 || len(m.Values) > MaxValues {
				return nil, invalid("metric %q: 1 to %d values, not %d", m.Name, MaxValues, len(m.Values))
			}
			for _, v := range m.Values {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return nil, invalid("metric %q: value %v", m.Name, v)
				}
			}
			if len(m.Values) == 1 {
				root[m.Name] = m.Values[0]
			} else {
				root[m.Name] = m.Values
			}
			dj.Metrics = append(dj.Metrics, metricDef{Name: m.Name, Unit: m.Unit})
		}
		meta.CloudWatchMetrics = append(meta.CloudWatchMetrics, dj)
	}
	root["_aws"] = meta
	line, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("emf: %w", err)
	}
	return append(line, '\n'), nil
}

func validName(what, s string) error {
	if s == "" || len(s) > maxNameLen {
		return invalid("%s name must be 1 to %d bytes: %q", what, maxNameLen, s)
	}
	return nil
}

// units are the units CloudWatch accepts (an empty unit means None).
var units = map[Unit]bool{"": true,
	"Seconds": true, "Microseconds": true, "Milliseconds": true, "Bytes": true, "Kilobytes": true, "Megabytes": true,
	"Gigabytes": true, "Terabytes": true, "Bits": true, "Kilobits": true, "Megabits": true, "Gigabits": true, "Terabits": true,
	"Percent": true, "Count": true, "Bytes/Second": true, "Kilobytes/Second": true, "Megabytes/Second": true,
	"Gigabytes/Second": true, "Terabytes/Second": true, "Bits/Second": true, "Kilobits/Second": true,
	"Megabits/Second": true, "Gigabits/Second": true, "Terabits/Second": true, "Count/Second": true, "None": true,
}

// Writer writes documents to an io.Writer, one whole line per Write call,
// so that lines from several goroutines never interleave. It is safe for
// concurrent use.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer on w (os.Stdout in production: the awslogs
// driver and Lambda send stdout to the log group).
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write encodes and writes each document. A document that breaks the
// specification is not written; the error names it, and the others are
// still written.
func (w *Writer) Write(docs ...Document) error {
	var errs []error
	for _, d := range docs {
		line, err := Marshal(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.mu.Lock()
		_, err = w.w.Write(line)
		w.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("emf: %w", err))
		}
	}
	return errors.Join(errs...)
}
