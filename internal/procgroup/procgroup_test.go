package procgroup_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
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
			if alive(t, pgid) {
				t.Fatal("a member of the group outlived Stop")
			}
			p.Stop(tc.sig, 0) // twice is harmless
		})
	}
}
