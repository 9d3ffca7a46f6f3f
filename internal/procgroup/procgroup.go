// Package procgroup starts a command in its own process group and stops the
// whole group: a chosen signal first, SIGKILL after a grace period, so that
// nothing the command started (nginx workers, a python behind a shim, npm's
// node) outlives the runner or the test that started it.
package procgroup

import (
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is a started command.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// Start starts cmd (set up but not started) in a new process group and
// waits for it in the background. Unless cmd sets WaitDelay, the wait for
// its output pipes after it ended is bounded (5 s): a descendant that left
// the group cannot hold Stop forever.
//
// When cmd asks for a parent-death signal (SysProcAttr.Pdeathsig, so that
// the command dies with this process even when no cleanup runs), it is
// started from a goroutine locked to its OS thread for the command's whole
// life: the signal fires when the thread that started the child ends, and
// the Go runtime may end threads before the process does.
func Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		if cmd.SysProcAttr.Pdeathsig != 0 {
			// Never unlocked: the thread ends with this goroutine, once
			// the child is reaped.
			runtime.LockOSThread()
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the command's process id, which is also its process group's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the command has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is cmd.Wait's result; read it after Exited is closed.
func (p *Process) Err() error { return p.err }

// Stop sends sig to the group, waits up to grace for the command to end,
// then kills what is left of the group and waits for the command. It is
// safe to call more than once.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) {
	pgid := -p.cmd.Process.Pid
	if sig != syscall.SIGKILL {
		_ = syscall.Kill(pgid, sig)
		select {
		case <-p.exited:
		case <-time.After(grace):
		}
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	<-p.exited
}
