package metrics

import (
	"fmt"
	"io"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Counts reads a scrape in the Prometheus text format and returns the
// values of the counter or gauge family name by the value of label (series
// that differ in other labels are added up). It is how `make demo` and the
// tests read /metrics.
func Counts(scrape io.Reader, name, label string) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(scrape)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	fam, ok := fams[name]
	if !ok {
		return nil, fmt.Errorf("metrics: no family %s in the scrape", name)
	}
	out := map[string]float64{}
	for _, m := range fam.GetMetric() {
		v := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				v = l.GetValue()
			}
		}
		out[v] += value(m)
	}
	return out, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}
