package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// Scope lets the driver, which is not a test, use the test helpers of
// internal/testutil (they take a testing.TB): Fatal and Skip panic with a
// value that Do recovers, and Cleanup functions run when Do returns. Only
// the methods below are implemented; the embedded nil TB makes any other
// call fail loudly instead of silently doing nothing.
type Scope struct {
	testing.TB

	name   string
	ctx    context.Context
	cancel context.CancelFunc
	log    io.Writer

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	tempDirs []string
}

type stop struct {
	msg  string
	skip bool
}

// Do runs fn with a fresh TB. A Fatal inside fn comes back as an error, a
// Skip as skipped; cleanups registered by fn have run when Do returns.
// Tests call it too, so that they run exactly what the driver runs.
func Do(ctx context.Context, name string, log io.Writer, fn func(tb testing.TB)) (skipped string, err error) {
	if log == nil {
		log = io.Discard
	}
	s := &Scope{name: name, log: log}
	s.ctx, s.cancel = context.WithCancel(ctx)
	defer s.close()
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		st, ok := r.(stop)
		if !ok {
			panic(r)
		}
		if st.skip {
			skipped = st.msg
			return
		}
		err = fmt.Errorf("%s: %s", name, st.msg)
	}()
	fn(s)
	return "", nil
}

func (s *Scope) close() {
	s.cancel()
	s.mu.Lock()
	cs := s.cleanups
	s.cleanups = nil
	dirs := s.tempDirs
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// Helper does nothing.
func (s *Scope) Helper() {}

// Name returns the measurement's name.
func (s *Scope) Name() string { return s.name }

// Context is cancelled just before the cleanups run, as testing does.
func (s *Scope) Context() context.Context { return s.ctx }

// Cleanup registers f to run when Do returns (last registered, first run).
func (s *Scope) Cleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

// Log writes to the progress log.
func (s *Scope) Log(args ...any) { fmt.Fprintln(s.log, append([]any{s.name + ":"}, args...)...) }

// Logf writes to the progress log.
func (s *Scope) Logf(format string, args ...any) {
	fmt.Fprintf(s.log, s.name+": "+format+"\n", args...)
}

// Error records a failure; Do still runs fn to its end.
func (s *Scope) Error(args ...any) { s.Log(args...); s.Fail() }

// Errorf records a failure; Do still runs fn to its end.
func (s *Scope) Errorf(format string, args ...any) { s.Logf(format, args...); s.Fail() }

// Fail marks the scope failed.
func (s *Scope) Fail() { s.mu.Lock(); s.failed = true; s.mu.Unlock() }

// Failed reports whether Error, Fail or Fatal was called.
func (s *Scope) Failed() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.failed }

// FailNow stops fn.
func (s *Scope) FailNow() { s.Fail(); panic(stop{msg: "failed"}) }

// Fatal stops fn with an error.
func (s *Scope) Fatal(args ...any) { s.Fail(); panic(stop{msg: fmt.Sprint(args...)}) }

// Fatalf stops fn with an error.
func (s *Scope) Fatalf(format string, args ...any) {
	s.Fail()
	panic(stop{msg: fmt.Sprintf(format, args...)})
}

// Skip stops fn and reports it skipped.
func (s *Scope) Skip(args ...any) { panic(stop{msg: fmt.Sprint(args...), skip: true}) }

// Skipf stops fn and reports it skipped.
func (s *Scope) Skipf(format string, args ...any) {
	panic(stop{msg: fmt.Sprintf(format, args...), skip: true})
}

// Skipped is false: a skip stops fn at once (Skip panics), so nothing that
// is still running was skipped.
func (s *Scope) Skipped() bool { return false }

// SkipNow stops fn and reports it skipped.
func (s *Scope) SkipNow() { panic(stop{msg: "skipped", skip: true}) }

// TempDir returns a directory removed when Do returns.
func (s *Scope) TempDir() string {
	d, err := os.MkdirTemp("", "ca-a2a-bench-")
	if err != nil {
		s.Fatal(err)
	}
	s.mu.Lock()
	s.tempDirs = append(s.tempDirs, d)
	s.mu.Unlock()
	return d
}
