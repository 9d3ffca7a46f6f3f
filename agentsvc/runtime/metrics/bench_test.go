package metrics_test

import (
	"io"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
)

// BenchmarkObserveCall is what counting one call adds to the request path:
// go test -run '^$' -bench . -benchmem ./agentsvc/runtime/metrics
func BenchmarkObserveCall(b *testing.B) {
	for _, tc := range []struct {
		name string
		emf  io.Writer
	}{{"prometheus only", nil}, {"with EMF samples", io.Discard}} {
		b.Run(tc.name, func(b *testing.B) {
			m := metrics.New(metrics.Options{Agent: "extractor", EMF: tc.emf})
			m.SetMethods([]string{"get_health", "extract_document"})
			i := m.Method("get_health")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m.ObserveCall(i, 0, time.Millisecond)
				}
			})
		})
	}
}
