// Package fanout runs one task per item with a bound on how many run at
// once (golang.org/x/sync/errgroup's SetLimit). The Lambda fans out its
// process_document calls with it, the orchestrator its process_batch
// pipelines.
//
// An item that has not started when the context ends is not started at
// all: it is handed to skip instead, so a fan-out never outlives its
// deadline by more than the tasks already running (which the same context
// bounds), and every item is accounted for.
package fanout

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// Each calls run(i) for every i in [0, n), at most limit at a time (limit
// below 1 counts as 1). Once ctx has ended, the items not yet started get
// skip(i, ctx.Err()) instead. Each returns when every item has been run or
// skipped. run and skip are called from several goroutines, each i once:
// they may write the i-th element of a slice without locking.
func Each(ctx context.Context, n, limit int, run func(i int), skip func(i int, err error)) {
	var g errgroup.Group
	g.SetLimit(max(1, limit))
	for i := range n {
		if err := ctx.Err(); err != nil {
			skip(i, err)
			continue
		}
		// Go waits for a free slot; the tasks holding the slots end by
		// ctx, so the wait does too.
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				skip(i, err)
				return nil
			}
			run(i)
			return nil
		})
	}
	_ = g.Wait()
}
