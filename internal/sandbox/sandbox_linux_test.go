//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/ca-a2a/ca-a2a/internal/testutil/ci"
)

// hang bounds every wait in these tests: a hang fails the test, but no
// assertion depends on how fast anything is.
const hang = 60 * time.Second

// testConfig has small limits so that limit cases end quickly, and a long
// Timeout so that only the cases meant to reach it do.
func testConfig() Config {
	return Config{
		Workers:          2,
		Timeout:          hang,
		MemoryLimit:      128 << 20,
		MaxDocumentBytes: 1 << 20,
		MaxOutputBytes:   64 << 10,
	}
}

func newTestPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	return p
}

func hangCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	t.Cleanup(cancel)
	return ctx
}

// requireLandlock skips without Landlock, or fails in CI, where the kernel
// is expected to have it.
func requireLandlock(t *testing.T) {
	t.Helper()
	if kernelLandlockABI() > 0 {
		return
	}
	ci.Required(t, "the kernel has no Landlock (confinement is best effort and not active here)")
}

func TestRunOutcomes(t *testing.T) {
	doc := []byte(`{"document":"bytes"}`)
	short := testConfig()
	short.Timeout = time.Second
	tests := []struct {
		name      string
		kind      string
		doc       []byte
		cfg       Config
		want      []byte
		wantKind  error
		wantMsg   string // RunError.Message
		wantErr   string // in RunError.Stderr
		wantCause string
		killed    uint64
	}{
		{name: "result", kind: "echo", doc: doc, want: doc},
		{name: "empty document", kind: "echo", doc: []byte{}, want: []byte{}},
		{name: "prints go to stderr", kind: "print", doc: doc, want: doc},
		{name: "malformed document", kind: "malformed", doc: doc, wantKind: ErrMalformedDocument,
			wantMsg: "pdf: xref entry 10^12   [31m out of range", wantCause: "pdf: xref entry 10^12   [31m out of range"},
		{name: "output refused by the writer", kind: "too-large", doc: doc, wantKind: ErrOutputTooLarge, wantCause: "output too large"},
		{name: "refusal ignored by the parser", kind: "swallow-too-large", doc: doc, wantKind: ErrOutputTooLarge},
		{name: "parser knows its output cannot fit", kind: "says-too-large", doc: doc, wantKind: ErrOutputTooLarge, wantCause: "output too large"},
		{name: "raw output past the cap", kind: "flood", doc: doc, wantKind: ErrOutputTooLarge, killed: 1},
		{name: "bytes before the frame", kind: "garbage", doc: doc, wantKind: ErrMalformedOutput},
		{name: "frame cut short", kind: "truncated", doc: doc, wantKind: ErrMalformedOutput},
		{name: "panic", kind: "panic", doc: doc, wantKind: ErrCrashed, wantErr: "boom: parser bug", wantCause: "crash"},
		{name: "exit 3", kind: "exit3", doc: doc, wantKind: ErrCrashed},
		{name: "panic mentioning memory is a crash", kind: "panic-says-oom", doc: doc, wantKind: ErrCrashed},
		{name: "one huge allocation", kind: "alloc-huge", doc: doc, wantKind: ErrMemoryLimit, wantErr: "out of memory", killed: 1, wantCause: "memory limit"},
		{name: "allocation without bound", kind: "alloc-grow", doc: doc, wantKind: ErrMemoryLimit, wantErr: "out of memory", killed: 1},
		{name: "recursion without bound", kind: "recurse", doc: doc, wantKind: ErrMemoryLimit, killed: 1},
		{name: "infinite loop", kind: "spin", doc: doc, cfg: short, wantKind: ErrTimeLimit, killed: 1, wantCause: "time limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg == (Config{}) {
				cfg = testConfig()
			}
			p := newTestPool(t, cfg)
			got, err := p.Run(hangCtx(t), tt.kind, tt.doc)
			if tt.wantKind == nil {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if !bytes.Equal(got, tt.want) {
					t.Fatalf("result %q, want %q", got, tt.want)
				}
			} else {
				var re *RunError
				if !errors.As(err, &re) || !errors.Is(err, tt.wantKind) {
					if re != nil {
						t.Logf("stderr: %.600q", re.Stderr)
					}
					t.Fatalf("Run: %v, want a RunError of kind %v", err, tt.wantKind)
				}
				t.Logf("%v; stderr starts %.160q", err, re.Stderr)
				if got != nil {
					t.Errorf("result %q alongside an error", got)
				}
				if tt.wantMsg != "" && re.Message != tt.wantMsg {
					t.Errorf("Message %q, want %q", re.Message, tt.wantMsg)
				}
				if !(raceEnabled && tt.wantKind == ErrMemoryLimit) && !strings.Contains(re.Stderr, tt.wantErr) {
					t.Errorf("Stderr %q does not hold %q", re.Stderr, tt.wantErr)
				}
				if tt.wantCause != "" && re.Cause() != tt.wantCause {
					t.Errorf("Cause %q, want %q", re.Cause(), tt.wantCause)
				}
				if errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%v matches context.DeadlineExceeded: the configured limit, not the caller's, ended it", err)
				}
			}
			if s := p.Stats(); s.Busy != 0 || s.Total != cfg.Workers || s.KilledSinceStart != tt.killed {
				t.Errorf("Stats %+v after the run, want busy 0, total %d, killed %d", s, cfg.Workers, tt.killed)
			}
		})
	}
}

func TestMemoryLimitLeavesParentAlone(t *testing.T) {
	p := newTestPool(t, testConfig())
	before := vmHWM(t)
	for _, kind := range []string{"alloc-huge", "alloc-grow"} {
		if _, err := p.Run(hangCtx(t), kind, nil); !errors.Is(err, ErrMemoryLimit) {
			t.Fatalf("%s: %v, want ErrMemoryLimit", kind, err)
		}
	}
	// The workers reached 128 MiB of heap or asked for 1 TiB; the parent's
	// peak grows by much less than one worker's limit.
	if after := vmHWM(t); after-before > 32<<20 {
		t.Fatalf("parent peak RSS grew from %d to %d bytes", before, after)
	}
}

func vmHWM(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

func TestCPULimitBackstop(t *testing.T) {
	p := newTestPool(t, testConfig())
	// The parent's timer (Timeout) is far away: only the kernel's
	// RLIMIT_CPU can end this run.
	p.cpuSeconds = func(time.Duration) uint64 { return 1 }
	_, err := p.Run(hangCtx(t), "spin", nil)
	if !errors.Is(err, ErrCPULimit) {
		t.Fatalf("Run: %v, want ErrCPULimit", err)
	}
	if s := p.Stats(); s.Busy != 0 || s.KilledSinceStart != 1 {
		t.Fatalf("Stats %+v, want busy 0, killed 1", s)
	}
}

// TestTimeLimitReportsCPUTime: a worker stopped by the time limit reports
// the CPU time it used, so that a caller can tell a parse that used its
// time (a burner) from one that did not get the CPU (here a sleeper). The
// burner uses burnCPU of CPU time, as it measures itself, then sleeps;
// when a loaded machine did not give it that much before the time limit,
// the runs are repeated with a limit twice as long.
func TestTimeLimitReportsCPUTime(t *testing.T) {
	for timeout := 2 * time.Second; ; timeout *= 2 {
		cfg := testConfig()
		cfg.Timeout = timeout
		p := newTestPool(t, cfg)
		runs := map[string]*RunError{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, kind := range []string{"burn-then-sleep", "sleep"} {
			wg.Go(func() {
				_, err := p.Run(hangCtx(t), kind, nil)
				var re *RunError
				if !errors.As(err, &re) || !errors.Is(err, ErrTimeLimit) {
					t.Errorf("%s: %v, want ErrTimeLimit", kind, err)
					return
				}
				mu.Lock()
				runs[kind] = re
				mu.Unlock()
			})
		}
		wg.Wait()
		burned, slept := runs["burn-then-sleep"], runs["sleep"]
		if burned == nil || slept == nil {
			t.FailNow()
		}
		t.Logf("time limit %s; CPU time: burner %v, sleeper %v", timeout, burned.CPUTime, slept.CPUTime)
		for _, re := range []*RunError{burned, slept} {
			if re.Wall != timeout {
				t.Errorf("Wall %v, want %v", re.Wall, timeout)
			}
		}
		if burned.CPUTime < burnCPU && timeout < 30*time.Second {
			continue // not burnt yet, or CPU time not reported: longer
		}
		if burned.CPUTime < burnCPU || slept.CPUTime >= burnCPU || slept.CPUTime <= 0 {
			t.Errorf("CPU time: burner %v (want at least %v), sleeper %v (want less, not 0)", burned.CPUTime, burnCPU, slept.CPUTime)
		}
		return
	}
}

// TestLandlockABI: the pool reports the kernel's Landlock level, which the
// agent logs and shows in /health.
func TestLandlockABI(t *testing.T) {
	p := newTestPool(t, testConfig())
	if got, want := p.LandlockABI(), kernelLandlockABI(); got != want {
		t.Fatalf("LandlockABI %d, the kernel says %d", got, want)
	}
	requireLandlock(t)
}

func TestCallerContext(t *testing.T) {
	t.Run("deadline before the timeout", func(t *testing.T) {
		p := newTestPool(t, testConfig())
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := p.Run(ctx, "spin", nil)
		if !errors.Is(err, ErrTimeLimit) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run: %v, want ErrTimeLimit and context.DeadlineExceeded", err)
		}
		if s := p.Stats(); s.Busy != 0 || s.KilledSinceStart != 1 {
			t.Fatalf("Stats %+v, want busy 0, killed 1", s)
		}
	})
	t.Run("cancelled while running", func(t *testing.T) {
		p := newTestPool(t, testConfig())
		ctx, cancel := context.WithCancel(hangCtx(t))
		go func() {
			waitBusy(t, p, 1)
			cancel()
		}()
		_, err := p.Run(ctx, "spin", nil)
		var re *RunError
		if !errors.Is(err, context.Canceled) || errors.As(err, &re) {
			t.Fatalf("Run: %v, want a plain error matching context.Canceled", err)
		}
		if s := p.Stats(); s.Busy != 0 || s.KilledSinceStart != 0 {
			t.Fatalf("Stats %+v, want busy 0, killed 0 (a cancellation is not a limit)", s)
		}
	})
	t.Run("already done", func(t *testing.T) {
		p := newTestPool(t, testConfig())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := p.Run(ctx, "echo", nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v, want context.Canceled", err)
		}
	})
}

// waitBusy polls until the pool has n busy slots (bounded by hang).
func waitBusy(t *testing.T, p *Pool, n int) {
	for end := time.Now().Add(hang); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if p.Stats().Busy == n {
			return
		}
	}
	t.Errorf("pool never had %d busy slots", n)
}

func TestProcessGroupKilled(t *testing.T) {
	// Orphans of this test's workers become this process's children, so
	// their exit status can be read: each must have died of SIGKILL.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	short := testConfig()
	short.Timeout = time.Second
	tests := []struct {
		name     string
		kind     string
		wantKind error // nil: a result (the grandchild's PID)
	}{
		{name: "worker exits, grandchild left behind", kind: "grandchild-exit"},
		{name: "worker loops", kind: "grandchild-spin", wantKind: ErrTimeLimit},
		{name: "grandchild holds the pipes", kind: "grandchild-holds-pipes", wantKind: ErrTimeLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, short)
			out, err := p.Run(hangCtx(t), tt.kind, nil)
			var pid int
			if tt.wantKind == nil {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				pid, err = strconv.Atoi(string(out))
			} else {
				var re *RunError
				if !errors.As(err, &re) || !errors.Is(err, tt.wantKind) {
					t.Fatalf("Run: %v, want %v", err, tt.wantKind)
				}
				pid, err = grandchildPID(re.Stderr)
			}
			if err != nil {
				t.Fatalf("grandchild PID: %v", err)
			}
			ws := reapGrandchild(t, pid)
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("grandchild %d ended with %v, want killed by SIGKILL", pid, ws)
			}
			if s := p.Stats(); s.Busy != 0 {
				t.Fatalf("Stats %+v, want busy 0", s)
			}
		})
	}
	// A process that leaves the group (setsid) and keeps the pipes open is
	// beyond the group kill; the run still ends, within the grace period.
	t.Run("grandchild escapes the group", func(t *testing.T) {
		p := newTestPool(t, short)
		_, err := p.Run(hangCtx(t), "grandchild-escapes", nil)
		var re *RunError
		if !errors.As(err, &re) || !errors.Is(err, ErrTimeLimit) {
			t.Fatalf("Run: %v, want ErrTimeLimit", err)
		}
		pid, err := grandchildPID(re.Stderr)
		if err != nil {
			t.Fatalf("grandchild PID: %v (stderr %q)", err, re.Stderr)
		}
		if err := unix.Kill(pid, 0); err != nil {
			t.Fatalf("escaped grandchild %d: %v; expected it alive (this case shows the limit of a group kill)", pid, err)
		}
		_ = unix.Kill(pid, syscall.SIGKILL)
		reapGrandchild(t, pid)
	})
}

func grandchildPID(stderr string) (int, error) {
	for line := range strings.Lines(stderr) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "grandchild pid "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("no grandchild pid in stderr " + strconv.Quote(stderr))
}

// reapGrandchild waits for pid, a process reparented to this subreaper.
func reapGrandchild(t *testing.T, pid int) syscall.WaitStatus {
	t.Helper()
	type result struct {
		ws  syscall.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		done <- result{ws, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("wait4(%d): %v", pid, r.err)
		}
		return r.ws
	case <-time.After(hang):
		_ = unix.Kill(pid, syscall.SIGKILL) // lets the goroutine end
		<-done
		t.Fatalf("grandchild %d still running", pid)
		return 0
	}
}

func TestBusyThenSlotFrees(t *testing.T) {
	cfg := testConfig()
	cfg.Workers = 1
	p := newTestPool(t, cfg)

	spinCtx, stopSpin := context.WithCancel(hangCtx(t))
	defer stopSpin()
	spinDone := make(chan error, 1)
	go func() {
		_, err := p.Run(spinCtx, "spin", nil)
		spinDone <- err
	}()
	waitBusy(t, p, 1)

	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.Run(short, "echo", []byte("x")); !errors.Is(err, ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run on a full pool: %v, want ErrBusy", err)
	}

	// A run waiting within its deadline gets the slot once it frees.
	type result struct {
		out []byte
		err error
	}
	waiting := make(chan result, 1)
	go func() {
		out, err := p.Run(hangCtx(t), "echo", []byte("valid"))
		waiting <- result{out, err}
	}()
	stopSpin()
	if err := <-spinDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("spinning run: %v, want context.Canceled", err)
	}
	r := <-waiting
	if r.err != nil || string(r.out) != "valid" {
		t.Fatalf("waiting run: %q, %v", r.out, r.err)
	}
	if s := p.Stats(); s.Busy != 0 {
		t.Fatalf("Stats %+v, want busy 0", s)
	}
}

func TestAdmission(t *testing.T) {
	cfg := testConfig()
	cfg.Workers = 2
	cfg.MemoryBudget = cfg.MaxDocumentBytes // one full-size document at a time
	p := newTestPool(t, cfg)
	ctx := hangCtx(t)

	if _, err := p.Admit(ctx, cfg.MaxDocumentBytes+1); !errors.Is(err, ErrDocumentTooLarge) {
		t.Fatalf("Admit over the limit: %v", err)
	}
	big, err := p.Admit(ctx, cfg.MaxDocumentBytes)
	if err != nil {
		t.Fatal(err)
	}
	// A slot is free, but the bytes are not.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := p.Admit(short, 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("Admit past the budget: %v, want ErrBusy", err)
	}
	if s := p.Stats(); s.Busy != 1 {
		t.Fatalf("Stats %+v, want busy 1 (the failed admission gave its slot back)", s)
	}
	if _, err := big.Run(ctx, "echo", make([]byte, cfg.MaxDocumentBytes+1)); !errors.Is(err, ErrDocumentTooLarge) {
		t.Fatalf("Run of more than admitted: %v", err)
	}
	if _, err := big.Run(ctx, "echo", nil); !errors.Is(err, ErrAdmissionUsed) {
		t.Fatalf("second Run: %v, want ErrAdmissionUsed", err)
	}
	if s := p.Stats(); s.Busy != 0 {
		t.Fatalf("Stats %+v after Run, want busy 0 (the slot goes with the run)", s)
	}
	big.Release()
	big.Release()

	a, err := p.Admit(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Run(ctx, "echo", []byte("hello"))
	a.Release()
	if err != nil || string(out) != "hello" {
		t.Fatalf("Run after Release: %q, %v", out, err)
	}
	// An admission released without a run gives back its slot too.
	b, err := p.Admit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if _, err := b.Run(ctx, "echo", nil); !errors.Is(err, ErrAdmissionUsed) {
		t.Fatalf("Run after Release: %v, want ErrAdmissionUsed", err)
	}
	if _, err := p.Run(ctx, "no-such-kind", nil); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("unknown kind: %v", err)
	}
	if s := p.Stats(); s.Busy != 0 {
		t.Fatalf("Stats %+v, want busy 0", s)
	}
}

// TestOpenedBeforeMain: a descriptor an init function opened and kept stops
// the worker; the runtime's poller, left by an init that opened and closed
// a file, does not, and is all that is left beside 0-2.
func TestOpenedBeforeMain(t *testing.T) {
	p := newTestPool(t, testConfig())
	out, err := p.Run(hangCtx(t), "poller-before-main", nil)
	if err != nil {
		t.Fatalf("poller started by an init: %v", err)
	}
	var r workerReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("descriptors of the worker: %v", r.FDs)
	if len(r.FDs) > 5 || !slices.Equal(r.FDs[:3], []int{0, 1, 2}) {
		t.Fatalf("descriptors %v, want 0-2 and at most the poller's two", r.FDs)
	}
	_, err = p.Run(hangCtx(t), "file-before-main", nil)
	var re *RunError
	if !errors.As(err, &re) || re.Kind != ErrSetup || !strings.Contains(re.Stderr, "opened before the worker started") {
		t.Fatalf("file kept open by an init: %v", err)
	}
}

func TestWorkerEnvironment(t *testing.T) {
	// A descriptor without close-on-exec, the kind an agent inherits from
	// its own parent, crosses exec: the worker must close it.
	leak, err := syscall.Open(filepath.Join(t.TempDir(), "secret"), syscall.O_CREAT|syscall.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leak)
	t.Setenv("SANDBOX_TEST_SECRET", "must not reach the worker")

	cfg := testConfig()
	p := newTestPool(t, cfg)
	doc := []byte("0123456789")
	out, err := p.Run(hangCtx(t), "report", doc)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var r workerReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"document received whole", r.DocLen == len(doc)},
		{"descriptors 0-2 only", slices.Equal(r.FDs, []int{0, 1, 2})},
		{"nothing of the parent's environment", slices.Equal(r.Env, workerEnv)},
		{"working directory /", r.Cwd == "/"},
		{"no new privileges", r.NoNewPrivs == 1},
		{"GOMAXPROCS 1", r.GOMAXPROCS == 1},
		{"GOMEMLIMIT 3/4 of the limit", r.GoMemLimit == cfg.MemoryLimit-cfg.MemoryLimit/4},
		{"no core files", r.Limits["core"] == [2]uint64{0, 0}},
		{"no files written", r.Limits["fsize"] == [2]uint64{0, 0}},
		{"few descriptors", r.Limits["nofile"] == [2]uint64{workerNoFile, workerNoFile}},
		{"CPU backstop", r.Limits["cpu"] == [2]uint64{cpuBackstop(cfg.Timeout), cpuBackstop(cfg.Timeout) + 1}},
		{"address space limited", r.Limits["as"][0] == r.Limits["as"][1] && r.Limits["as"][0] > uint64(cfg.MemoryLimit) && r.Limits["as"][0] < 1<<50},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: worker reported %+v", c.name, r)
		}
	}

	t.Run("landlock", func(t *testing.T) {
		requireLandlock(t)
		abi := kernelLandlockABI()
		want := []struct {
			name, got, want string
			minABI          int
		}{
			{"open a file", r.OpenErr, "EACCES", 1},
			{"start a program", r.ExecErr, "EACCES", 1},
			{"TCP connect", r.DialErr, "EACCES", 4},
			{"signal the parent", r.KillErr, "EPERM", 6},
		}
		for _, w := range want {
			if abi >= w.minABI && w.got != w.want {
				t.Errorf("%s: %q, want %s (Landlock ABI %d)", w.name, w.got, w.want, abi)
			}
		}
	})
}

func TestManyRunsLeaveNothingBehind(t *testing.T) {
	defer goleak.VerifyNone(t)
	cfg := testConfig()
	cfg.Timeout = time.Second
	p := newTestPool(t, cfg)
	kinds := []string{"echo", "malformed", "panic", "flood", "alloc-huge", "garbage", "spin"}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(kinds))
	for i := range 4 * len(kinds) {
		wg.Go(func() {
			_, err := p.Run(hangCtx(t), kinds[i%len(kinds)], []byte("doc"))
			if err != nil && !errors.As(err, new(*RunError)) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Run: %v", err)
	}
	if s := p.Stats(); s.Busy != 0 {
		t.Errorf("Stats %+v, want busy 0", s)
	}
	if kids := children(t); len(kids) != 0 {
		t.Errorf("processes left as children of the test: %v", kids)
	}
}

// children lists this process's child processes with their state (a
// zombie shows "Z").
func children(t *testing.T) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	var kids []string
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and ')'.
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == self {
			kids = append(kids, path+" state "+f[0])
		}
	}
	return kids
}

func TestNewPool(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{name: "defaults", cfg: Config{}},
		{name: "negative workers", cfg: Config{Workers: -1}, want: ErrConfig},
		{name: "too many workers", cfg: Config{Workers: 1025}, want: ErrConfig},
		{name: "negative timeout", cfg: Config{Timeout: -time.Second}, want: ErrConfig},
		{name: "memory limit below the Go runtime's floor", cfg: Config{MemoryLimit: MinMemoryLimit - 1}, want: ErrConfig},
		{name: "document and output do not fit the memory limit", cfg: Config{MemoryLimit: MinMemoryLimit, MaxDocumentBytes: MinMemoryLimit}, want: ErrConfig},
		{name: "timeout over a day", cfg: Config{Timeout: 25 * time.Hour}, want: ErrConfig},
		{name: "output over 1 GiB", cfg: Config{MemoryLimit: 4 << 30, MaxOutputBytes: 1<<30 + 1}, want: ErrConfig},
		{name: "document over 1 GiB", cfg: Config{MemoryLimit: 4 << 30, MaxDocumentBytes: 1<<30 + 1}, want: ErrConfig},
		{name: "negative document limit", cfg: Config{MaxDocumentBytes: -1}, want: ErrConfig},
		{name: "memory limit over 1 TiB", cfg: Config{MemoryLimit: 1<<40 + 1}, want: ErrConfig},
		{name: "budget below one document", cfg: Config{MemoryBudget: DefaultMaxDocumentBytes - 1}, want: ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPool(tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewPool: %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			want := Config{Workers: DefaultWorkers, Timeout: DefaultTimeout, MemoryLimit: DefaultMemoryLimit,
				MaxDocumentBytes: DefaultMaxDocumentBytes, MaxOutputBytes: DefaultMaxOutputBytes,
				MemoryBudget: DefaultWorkers * DefaultMaxDocumentBytes, Executable: "/proc/self/exe"}
			if p.Config() != want {
				t.Fatalf("Config %+v, want %+v", p.Config(), want)
			}
		})
	}
	t.Run("Main not called", func(t *testing.T) {
		mainCalled.Store(false)
		defer mainCalled.Store(true)
		if _, err := NewPool(Config{}); !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("NewPool: %v, want ErrNotInstalled", err)
		}
	})
}

func TestSetupFailure(t *testing.T) {
	cfg := testConfig()
	cfg.Executable = filepath.Join(t.TempDir(), "missing")
	p := newTestPool(t, cfg)
	if _, err := p.Run(hangCtx(t), "echo", nil); !errors.Is(err, ErrSetup) {
		t.Fatalf("Run with a missing executable: %v, want ErrSetup", err)
	}
	if s := p.Stats(); s.Busy != 0 {
		t.Fatalf("Stats %+v, want busy 0", s)
	}
}

func TestRegister(t *testing.T) {
	fn := func([]byte, io.Writer) error { return nil }
	tests := []struct {
		name, kind string
		fn         Func
		beforeMain bool
		want       string
	}{
		{name: "empty kind", kind: "", fn: fn, beforeMain: true, want: "invalid worker kind"},
		{name: "upper case", kind: "PDF", fn: fn, beforeMain: true, want: "invalid worker kind"},
		{name: "slash", kind: "a/b", fn: fn, beforeMain: true, want: "invalid worker kind"},
		{name: "too long", kind: strings.Repeat("a", 33), fn: fn, beforeMain: true, want: "invalid worker kind"},
		{name: "nil function", kind: "nil-fn", beforeMain: true, want: "nil worker function"},
		{name: "duplicate", kind: "echo", fn: fn, beforeMain: true, want: "registered twice"},
		{name: "after Main", kind: "late", fn: fn, want: "after Main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.beforeMain {
				mainCalled.Store(false)
				defer mainCalled.Store(true)
			}
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tt.want) {
					t.Fatalf("panic %v, want one about %q", r, tt.want)
				}
			}()
			Register(tt.kind, tt.fn)
		})
	}
	if _, ok := lookup("late"); ok {
		t.Fatal("a kind registered after Main exists")
	}
}

func TestDiedOfMemory(t *testing.T) {
	tests := []struct {
		name   string
		code   int
		stderr string
		want   bool
	}{
		{"refused allocation", 2, "runtime: out of memory: cannot allocate 4194304-byte block (125468672 in use)\nfatal error: out of memory\n", true},
		{"stack limit", 2, "runtime: goroutine stack exceeds 33554432-byte limit\nfatal error: stack overflow\n", true},
		{"race runtime collision", 2, "fatal error: too many address space collisions for -race mode\n", true},
		{"race allocator", 66, "==7123==ERROR: ThreadSanitizer failed to allocate 0x8000000 (134217728) bytes at address 218008000000 (errno: 12)\n", true},
		{"panic quoting the words", 2, "panic: fatal error: out of memory\n\ngoroutine 1 [running]:\n", false},
		{"fatal error of another kind", 2, "fatal error: concurrent map writes\n", false},
		{"right words, wrong exit code", 1, "fatal error: out of memory\n", false},
		{"race allocator, other errno", 66, "==1==ERROR: ThreadSanitizer failed to allocate 0x1 (1) bytes at address 0 (errno: 22)\n", false},
		{"nothing", 2, "", false},
	}
	for _, tt := range tests {
		if got := diedOfMemory(tt.code, []byte(tt.stderr)); got != tt.want {
			t.Errorf("%s: diedOfMemory = %v, want %v", tt.name, got, tt.want)
		}
	}
}
