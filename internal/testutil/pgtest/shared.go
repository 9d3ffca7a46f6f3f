package pgtest

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// M is what TestMain runs: *testing.M, or a wrapper of it such as the one
// SharedMain returns (goleak.VerifyTestMain accepts both).
type M interface{ Run() int }

// sharedState is the one cluster of a test binary.
type sharedState struct {
	mu        sync.Mutex
	installed bool
	opts      []Option
	c         *Cluster
	err       error // the start failure, repeated to every later test
}

var shared = &sharedState{}

// SharedMain enables Shared for the test binary: the returned M runs m, then
// stops the shared cluster (if a test started it) and removes it, keeping its
// log when a test failed. opts configure the shared cluster.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.SharedMain(m).Run()) }
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.SharedMain(m)) }
func SharedMain(m M, opts ...Option) M {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.installed, shared.opts = true, opts
	return sharedMain{m: m, s: shared}
}

type sharedMain struct {
	m M
	s *sharedState
}

// Run runs the tests, then tears the shared cluster down.
func (w sharedMain) Run() int {
	code := w.m.Run()
	w.s.mu.Lock()
	c := w.s.c
	w.s.c = nil
	w.s.mu.Unlock()
	if c != nil {
		c.close(code != 0, func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		})
	}
	return code
}

// Shared returns the test binary's shared cluster, started by the first test
// that asks (so a binary whose PostgreSQL tests are skipped pays nothing).
// Tests share it: give each its own database (NewDatabase), and use Start
// for a test that stops or restarts the server. It needs SharedMain in
// TestMain, which stops it; it skips or fails like Start without binaries.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	s := shared
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.installed {
		t.Fatal("pgtest: Shared needs TestMain to run the tests through pgtest.SharedMain: func TestMain(m *testing.M) { os.Exit(pgtest.SharedMain(m).Run()) }")
	}
	if s.c != nil {
		return s.c
	}
	if s.err != nil {
		t.Fatalf("pgtest: the shared cluster failed to start earlier: %v", s.err)
	}
	o := collect(s.opts)
	if o.err != nil {
		s.err = o.err
		t.Fatal(o.err)
	}
	bins := requireBinaries(t)
	c, err := newCluster(t, bins, o)
	if err != nil {
		s.err = err
		if c != nil {
			c.close(true, t.Logf)
		}
		t.Fatal(err)
	}
	c.shared = true
	s.c = c
	return c
}
