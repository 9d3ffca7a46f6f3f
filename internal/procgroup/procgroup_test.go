package procgroup_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/procgroup"
)

// alive reports whether the process group still has a running member. A
// killed member may stay a zombie until init reaps it; that is not running.
func alive(t *testing.T, pgid int) bool {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc to inspect process groups:", err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 2 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" {
			return true
		}
	}
	return false
}

func TestStop(t *testing.T) {
	const children = "sleep 60 >/dev/null 2>&1 & sleep 60 >/dev/null 2>&1 & echo ready; wait"
	tests := []struct {
		name   string
		script string
		sig    syscall.Signal
	}{
		// SIGTERM ends the leader and its children at once.
		{"graceful", children, syscall.SIGTERM},
		// The leader ignores SIGTERM: SIGKILL after the grace period takes
		// it and its children.
		{"stubborn", "trap '' TERM; " + children, syscall.SIGTERM},
		{"kill at once", children, syscall.SIGKILL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tc.script)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			p, err := procgroup.Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			// Stop only once the children run, or there is nothing to test.
			if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("script did not start: %q %v", line, err)
			}
			pgid := p.Pid()
			if !alive(t, pgid) {
				t.Fatal("the group is not running; the test proves nothing")
			}
			p.Stop(tc.sig, 200*time.Millisecond)
			select {
			case <-p.Exited():
			default:
				t.Fatal("Stop returned before the command ended")
			}
			// Stop waits for the leader only: a member that got SIGKILL
			// dies in its own time, which a loaded machine may stretch.
			// What matters is that every member was signalled and dies.
			for deadline := time.Now().Add(10 * time.Second); alive(t, pgid); {
				if time.Now().After(deadline) {
					t.Fatal("a member of the group outlived Stop")
				}
				time.Sleep(10 * time.Millisecond)
			}
			p.Stop(tc.sig, 0) // twice is harmless
		})
	}
}

// pdeathsigHelper makes this test binary start `sleep 60` with a
// parent-death signal from a goroutine that locks its thread and ends (so
// the thread that called Start is gone), print the child's pid, and wait.
const pdeathsigHelper = "PROCGROUP_PDEATHSIG_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(pdeathsigHelper) != "" {
		pids := make(chan int)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			cmd := exec.Command("sleep", "60")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			p, err := procgroup.Start(cmd)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			pids <- p.Pid()
		}()
		fmt.Println(<-pids)
		select {}
	}
	os.Exit(m.Run())
}

// TestParentDeathSignal: a command started with Pdeathsig outlives the
// thread that called Start, and dies with this process even when no
// cleanup runs (here: the process is SIGKILLed).
func TestParentDeathSignal(t *testing.T) {
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), pdeathsigHelper+"=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = helper.Process.Kill(); _ = helper.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper printed %q", line)
	}
	// The starting goroutine ends (and its thread with it) just after it
	// hands over the pid: watch the child for a while, not once.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !alive(t, child) {
			t.Fatal("the child died with the thread that started it")
		}
	}
	_ = helper.Process.Kill()
	_ = helper.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(t, child) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(child, syscall.SIGKILL)
			t.Fatal("the child outlived its parent by 10s: no parent-death signal")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
