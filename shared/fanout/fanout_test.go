package fanout_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/shared/fanout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEachBoundsConcurrencyAndRunsEveryItem(t *testing.T) {
	for _, tc := range []struct{ n, limit, wantMax int }{{20, 4, 4}, {3, 8, 3}, {5, 0, 1}, {0, 4, 0}} {
		var running, most atomic.Int32
		ran := make([]int, tc.n)
		release := make(chan struct{})
		var once sync.Once
		fanout.Each(t.Context(), tc.n, tc.limit, func(i int) {
			now := running.Add(1)
			for {
				m := most.Load()
				if now <= m || most.CompareAndSwap(m, now) {
					break
				}
			}
			// Hold the first tasks until the limit is reached (or every
			// item runs), so the bound is really tested.
			if int(now) == min(tc.n, max(1, tc.limit)) {
				once.Do(func() { close(release) })
			}
			<-release
			ran[i]++
			running.Add(-1)
		}, func(i int, err error) { t.Errorf("item %d skipped: %v", i, err) })
		for i, n := range ran {
			if n != 1 {
				t.Errorf("n=%d limit=%d: item %d ran %d times", tc.n, tc.limit, i, n)
			}
		}
		if int(most.Load()) != tc.wantMax {
			t.Errorf("n=%d limit=%d: %d ran at once, want %d", tc.n, tc.limit, most.Load(), tc.wantMax)
		}
	}
}

func TestEachSkipsWhatHasNotStartedWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	const n = 10
	outcome := make([]string, n)
	fanout.Each(ctx, n, 2, func(i int) {
		// The first task to run ends the context: what has not started
		// by then must be skipped, and no more than the one other slot
		// may have started.
		cancel()
		outcome[i] = "ran"
	}, func(i int, err error) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("item %d skipped with %v", i, err)
		}
		outcome[i] = "skipped"
	})
	ran := 0
	for i, o := range outcome {
		switch o {
		case "ran":
			ran++
		case "skipped":
		default:
			t.Fatalf("item %d neither ran nor was skipped", i)
		}
	}
	if ran < 1 || ran > 2 {
		t.Fatalf("%d items ran after the context ended, want 1 or 2", ran)
	}
}
