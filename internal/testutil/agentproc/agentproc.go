// Package agentproc runs the real agent binary in a test: one process with
// exactly the environment given, its output captured, waited for until it
// answers, and stopped when the test ends (its output logged if the test
// failed).
//
// Typical use:
//
//	p := agentproc.Start(t, agentproc.Config{Bin: bin, Env: env})
//	client := ... // what the test calls the agent with
//	p.WaitUntil(t, "answer /health", func() bool { return healthy(client) })
package agentproc

import (
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/procgroup"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
)

// Bounds of the waits, generous for a loaded machine: they only decide
// when a test gives up.
const (
	// ReadyTimeout bounds WaitUntil.
	ReadyTimeout = 60 * time.Second
	// StopGrace is how long a process has to stop after SIGTERM (an agent
	// drains requests in flight for up to 25 s) before it is killed.
	StopGrace = 30 * time.Second
	// pollEvery is how often WaitUntil asks.
	pollEvery = 100 * time.Millisecond
)

// Config says what to run.
type Config struct {
	// Bin is the agent binary.
	Bin string
	// Env is the whole environment of the process: nothing of the test's
	// own is passed on but PATH, when Env does not set it.
	Env map[string]string
	// Stdout, when set, receives the process's standard output (the EMF
	// lines); otherwise it goes to Output with standard error (the logs).
	Stdout io.Writer
	// Kill ends the process with SIGKILL when the test ends. By default it
	// gets SIGTERM and StopGrace to exit with status 0, or the test fails.
	Kill bool
	// OutputMax, when above 0, keeps only the last OutputMax bytes of
	// Output (an agent under load writes an access line per request).
	OutputMax int
}

// Process is a running agent.
type Process struct {
	// Output is what the process wrote: its logs (standard error), and its
	// standard output unless Config.Stdout took it.
	Output *syncbuf.Buffer
	proc   *procgroup.Process
}

// Start runs the agent in its own process group and stops it when the test
// ends (see Config.Kill). It fails the test if the process cannot start.
func Start(t testing.TB, c Config) *Process {
	t.Helper()
	cmd := exec.Command(c.Bin)
	if _, ok := c.Env["PATH"]; !ok {
		cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
	}
	for k, v := range c.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &Process{Output: &syncbuf.Buffer{Max: c.OutputMax}}
	cmd.Stdout, cmd.Stderr = p.Output, p.Output
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	// If the test binary dies without its cleanups (a -timeout panic), the
	// kernel kills the agent rather than leave it holding its port.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	proc, err := procgroup.Start(cmd)
	if err != nil {
		t.Fatalf("agentproc: start %s: %v", c.Bin, err)
	}
	p.proc = proc
	t.Cleanup(func() {
		select {
		case <-p.Exited(): // the test ended it, or it died: nothing to stop
		default:
			if c.Kill {
				p.Kill()
			} else if err := p.Stop(); err != nil {
				t.Errorf("agentproc: the agent did not exit cleanly within %s of SIGTERM: %v", StopGrace, err)
			}
		}
		if t.Failed() {
			t.Logf("agent (pid %d) output:\n%s", p.Pid(), p.Output)
		}
	})
	return p
}

// Pid is the agent's process id.
func (p *Process) Pid() int { return p.proc.Pid() }

// Exited is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.proc.Exited() }

// Alive reports whether the process has not ended.
func (p *Process) Alive() bool {
	select {
	case <-p.Exited():
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM, waits up to StopGrace, then kills the process, and
// returns how it ended: nil for exit status 0.
func (p *Process) Stop() error {
	p.proc.Stop(syscall.SIGTERM, StopGrace)
	return p.proc.Err()
}

// Kill ends the process at once (SIGKILL) and waits for it.
func (p *Process) Kill() { p.proc.Stop(syscall.SIGKILL, 0) }

// WaitUntil polls ready until it holds, and fails the test (with the
// process's output) when the process exits first or ReadyTimeout passes.
func (p *Process) WaitUntil(t testing.TB, what string, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(ReadyTimeout)
	for !ready() {
		select {
		case <-p.Exited():
			t.Fatalf("agentproc: the agent exited before it would %s (%v):\n%s", what, p.proc.Err(), p.Output)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agentproc: the agent did not %s within %s:\n%s", what, ReadyTimeout, p.Output)
		}
		time.Sleep(pollEvery)
	}
}
