//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func supported() error { return nil }

// workerEnv is the worker's whole environment: nothing of the agent's, two
// Go runtime settings and one for the C library. Since Go 1.25 the runtime
// opens the cgroup CPU limit files at start and keeps them open to follow
// the limit; containermaxprocs=0 makes it close them, so the worker holds
// descriptors 0-2 only. GOMAXPROCS=1 (the worker runs one parse) also stops
// the runtime's periodic GOMAXPROCS update. MALLOC_ARENA_MAX=1 matters only
// in a binary built with cgo (tests: -race needs it): there the runtime
// starts threads through glibc, whose allocator reserves a 64 MiB arena of
// address space for threads that meet contention, counted whole by
// RLIMIT_AS; on a loaded machine three or four of them took a worker's
// whole room (a 20 MiB allocation refused with 4 MiB in use). A static
// binary (CGO_ENABLED=0, as the agent's image is built) has no glibc.
var workerEnv = []string{"GOMAXPROCS=1", "GODEBUG=containermaxprocs=0", "MALLOC_ARENA_MAX=1"}

// stderrHead bounds the standard error kept from a worker; the rest is
// drained and dropped so the worker never blocks on it.
const stderrHead = 8 << 10

// pipeGrace bounds how long the parent still reads a pipe once the worker's
// process group is dead and reaped. Only a process that left the group
// (setsid) can hold a pipe open past that point.
const pipeGrace = time.Second

// execute runs one worker on doc and classifies how it ended.
func (p *Pool) execute(ctx context.Context, kind string, doc []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxOutcome(err, false)
	}
	wall, byDeadline := p.cfg.Timeout, false
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < wall {
			wall, byDeadline = d, true
		}
	}
	if wall <= 0 {
		return nil, ctxOutcome(context.DeadlineExceeded, false)
	}
	spec := workerSpec{
		kind:        kind,
		docLen:      int64(len(doc)),
		memoryLimit: p.cfg.MemoryLimit,
		cpuSeconds:  p.cpuSeconds(wall),
		maxOutput:   p.cfg.MaxOutputBytes,
	}
	// The worker's parent-death signal fires when the thread that forks
	// it ends, not the process: Go ends a thread when a goroutine exits
	// locked to it, which some code does (procgroup in the test binaries,
	// which also start PostgreSQL with a parent-death signal). Holding the
	// thread from the fork until the worker is reaped means no such
	// goroutine can run on it meanwhile; it stays in Go's pool afterwards.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	w, err := startWorker(p.cfg.Executable, spec)
	if err != nil {
		return nil, &RunError{Kind: ErrSetup, cause: err}
	}
	maxFrame := frameHeaderLen + max(p.cfg.MaxOutputBytes, MaxMessageBytes)
	return w.supervise(ctx, wall, byDeadline, doc, maxFrame, float64(spec.cpuSeconds+1))
}

// worker is one started worker process and the parent's ends of its pipes.
type worker struct {
	cmd                   *exec.Cmd
	stdin, stdout, stderr *os.File
}

func startWorker(exe string, spec workerSpec) (*worker, error) {
	// os.Pipe ends are close-on-exec and, on the parent's side, pollable:
	// deadlines can unblock them.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:   exe,
		Args:   append([]string{"sandbox-worker"}, spec.args()...),
		Env:    workerEnv, // nothing inherited
		Dir:    "/",
		Stdin:  inR,
		Stdout: outW,
		Stderr: errW,
		SysProcAttr: &syscall.SysProcAttr{
			// Its own process group, so that one kill reaches
			// whatever the worker starts.
			Setpgid: true,
			// Dies with the agent (the thread that forked it, in
			// fact, which execute holds until the worker is reaped).
			Pdeathsig: syscall.SIGKILL,
		},
	}
	err = cmd.Start()
	closeAll(inR, outW, errW) // the child holds its own copies
	if err != nil {
		closeAll(inW, outR, errR)
		return nil, err
	}
	return &worker{cmd: cmd, stdin: inW, stdout: outR, stderr: errR}, nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

type readResult struct {
	b        []byte
	overflow bool
}

// supervise feeds doc, collects the output within wall, then kills the
// process group, reaps the worker and classifies the outcome. Every
// goroutine it starts has ended when it returns.
func (w *worker) supervise(ctx context.Context, wall time.Duration, byDeadline bool, doc []byte, maxFrame int64, cpuHard float64) ([]byte, error) {
	pid := w.cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitExited(pid)
	}()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = w.stdin.Write(doc) // a worker that stops reading is the loop's business
		_ = w.stdin.Close()
	}()
	outc := make(chan readResult, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(w.stdout, maxFrame+1))
		_ = w.stdout.Close()
		outc <- readResult{b: b, overflow: err == nil && int64(len(b)) > maxFrame}
	}()
	errc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(w.stderr, stderrHead))
		_, _ = io.Copy(io.Discard, w.stderr)
		_ = w.stderr.Close()
		errc <- b
	}()

	timer := time.NewTimer(wall)
	defer timer.Stop()
	var (
		limit             error // set when the parent ends the run
		out               readResult
		stderr            []byte
		exitDone, outDone bool
		errDone           bool
	)
loop:
	for !exitDone || !outDone || !errDone {
		select {
		case <-exited:
			exitDone, exited = true, nil
		case out = <-outc:
			outDone = true
			if out.overflow {
				limit = &RunError{Kind: ErrOutputTooLarge, killedByParent: true}
				break loop
			}
		case stderr = <-errc:
			errDone = true
		case <-timer.C:
			tl := &RunError{Kind: ErrTimeLimit, killedByParent: true}
			if byDeadline {
				tl.cause = context.DeadlineExceeded
			}
			limit = tl
			break loop
		case <-ctx.Done():
			limit = ctxOutcome(ctx.Err(), true)
			break loop
		}
	}

	// Kill the group while the worker is at worst a zombie: its PID, which
	// is the group's ID, cannot have been reused yet. The worker itself is
	// killed by PID too, in case it moved to another group.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if !exitDone {
		<-exited
	}
	waitErr := w.cmd.Wait()

	// The group is dead; only an escaped process could still hold a pipe.
	deadline := time.Now().Add(pipeGrace)
	_ = w.stdin.SetWriteDeadline(deadline)
	_ = w.stdout.SetReadDeadline(deadline)
	_ = w.stderr.SetReadDeadline(deadline)
	<-wrote
	if !outDone {
		out = <-outc
	}
	if !errDone {
		stderr = <-errc
	}

	if limit == nil {
		b, err := classify(w.cmd.ProcessState, waitErr, out.b, stderr, maxFrame-frameHeaderLen, cpuHard)
		if err == nil {
			return b, nil
		}
		limit = err
	}
	if re, ok := limit.(*RunError); ok {
		re.Exit = exitString(w.cmd.ProcessState)
		re.Stderr = string(stderr)
		re.Wall = wall
		if ps := w.cmd.ProcessState; ps != nil {
			re.CPUTime = ps.UserTime() + ps.SystemTime()
		}
	}
	return nil, limit
}

// ctxOutcome is the result of a run whose context ended: the caller's
// deadline is a time limit; a cancellation is the caller going away, not a
// limit, and not a RunError.
func ctxOutcome(err error, killed bool) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &RunError{Kind: ErrTimeLimit, cause: context.DeadlineExceeded, killedByParent: killed}
	}
	return fmt.Errorf("sandbox: run abandoned: %w", err)
}

// waitExited blocks until process pid has exited, without reaping it.
func waitExited(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// classify turns how a worker ended, and what it wrote, into the result or a
// *RunError.
func classify(ps *os.ProcessState, waitErr error, out, stderr []byte, maxOutput int64, cpuHard float64) ([]byte, error) {
	if ps == nil {
		return nil, &RunError{Kind: ErrSetup, cause: waitErr, Stderr: string(stderr)}
	}
	re := &RunError{Exit: exitString(ps), Stderr: string(stderr)}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	switch {
	case ps.Success():
		res, err := decodeFrame(out, int(maxOutput))
		if err == nil {
			return res, nil
		}
		if fr, ok := err.(*RunError); ok {
			return nil, fr
		}
		re.Kind = ErrMalformedOutput
	case ws.Exited() && ws.ExitStatus() == exitCPULimit,
		ws.Signaled() && ws.Signal() == syscall.SIGXCPU:
		re.Kind = ErrCPULimit
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL && (ps.UserTime()+ps.SystemTime()).Seconds() >= cpuHard-0.1:
		// Not killed by the parent (that path never gets here): the
		// kernel enforcing the hard CPU limit.
		re.Kind = ErrCPULimit
	case ws.Exited() && diedOfMemory(ws.ExitStatus(), stderr):
		re.Kind = ErrMemoryLimit
	case ws.Exited() && ws.ExitStatus() == exitSetup:
		re.Kind = ErrSetup
	default:
		re.Kind = ErrCrashed
	}
	return nil, re
}

// memoryDeaths are what the Go runtime prints when an allocation, a stack or
// a thread did not fit the limits. A race-enabled build (the tests) dies
// differently: its runtime reports refused heap mappings as address-space
// collisions, and ThreadSanitizer's allocator exits 66 with ENOMEM.
var memoryDeaths = []string{"out of memory", "cannot allocate memory", "cannot map pages", "stack overflow",
	"failed to create new OS thread", "too many address space collisions for -race mode"}

const (
	raceExitCode = 66
	raceNoMemory = "ThreadSanitizer failed to allocate"
)

// diedOfMemory looks for the runtime's own fatal-error line, so that a panic
// whose message merely mentions memory stays a crash.
func diedOfMemory(exitCode int, stderr []byte) bool {
	for line := range bytes.Lines(stderr) {
		s := string(line)
		switch {
		case exitCode == 2 && (strings.HasPrefix(s, "fatal error: ") || strings.HasPrefix(s, "runtime: ")):
			for _, m := range memoryDeaths {
				if strings.Contains(s, m) {
					return true
				}
			}
		case exitCode == raceExitCode && strings.HasPrefix(s, "==") &&
			strings.Contains(s, raceNoMemory) && strings.Contains(s, "(errno: 12)"):
			return true
		}
	}
	return false
}

func exitString(ps *os.ProcessState) string {
	if ps == nil || ps.Success() {
		return ""
	}
	return ps.String()
}
