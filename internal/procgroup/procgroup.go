// Package procgroup starts a command in its own process group and stops the
// whole group: a chosen signal first, SIGKILL after a grace period, so that
// nothing the command started (nginx workers, a python behind a shim, npm's
// node) outlives the runner or the test that started it.
package procgroup

import (
	"os/exec"
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
func Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
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
