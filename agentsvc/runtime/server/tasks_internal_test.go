package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
)

func TestTaskStoreBounds(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	id := func(i int) a2a.TaskID { return a2a.TaskID(fmt.Sprint("t", i)) }
	tests := []struct {
		name   string
		limits TaskLimits
		puts   []int64 // sizes, one task each, a second apart
		after  time.Duration
		kept   []int // indexes still found
		bytes  int64
	}{
		{"all kept", TaskLimits{Count: 3, Bytes: 100}, []int64{10, 10, 10}, 0, []int{0, 1, 2}, 30},
		{"count: the oldest goes", TaskLimits{Count: 2, Bytes: 100}, []int64{10, 10, 10}, 0, []int{1, 2}, 20},
		{"bytes: as many of the oldest as needed go", TaskLimits{Count: 10, Bytes: 100}, []int64{40, 40, 10, 50, 20}, 0, []int{2, 3, 4}, 80},
		{"a task larger than the bound is not kept", TaskLimits{Count: 10, Bytes: 100}, []int64{10, 101}, 0, []int{0}, 10},
		{"a task of the whole bound empties the store", TaskLimits{Count: 10, Bytes: 100}, []int64{10, 100}, 0, []int{1}, 100},
		{"TTL", TaskLimits{TTL: 10 * time.Second, Count: 10, Bytes: 100}, []int64{1, 1, 1}, 8500 * time.Millisecond, []int{1, 2}, 2},
		{"TTL: all gone", TaskLimits{TTL: 10 * time.Second, Count: 10, Bytes: 100}, []int64{1, 1}, time.Hour, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := now
			tc.limits.Now = func() time.Time { return clock }
			s := newTaskStore(tc.limits)
			for i, size := range tc.puts {
				s.put("lambda", id(i), make([]byte, size))
				clock = clock.Add(time.Second)
			}
			// The last task was put a second ago.
			clock = clock.Add(tc.after - time.Second)
			for i := range tc.puts {
				_, found := s.get("lambda", id(i))
				want := false
				for _, k := range tc.kept {
					want = want || k == i
				}
				if found != want {
					t.Errorf("task %d found %v, want %v", i, found, want)
				}
				if _, other := s.get("orchestrator", id(i)); other {
					t.Errorf("task %d found by another caller", i)
				}
			}
			if n, b := s.len(); n != len(tc.kept) || b != tc.bytes {
				t.Errorf("%d tasks, %d bytes kept; want %d, %d", n, b, len(tc.kept), tc.bytes)
			}
		})
	}
	if newTaskStore(TaskLimits{}).put("", id(0), []byte("{}")) {
		t.Error("a task without a caller was kept")
	}
}
