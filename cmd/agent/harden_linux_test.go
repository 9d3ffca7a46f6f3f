package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestHarden: after harden the process is not dumpable, so a process of
// the same user without CAP_SYS_PTRACE cannot read its environment.
func TestHarden(t *testing.T) {
	if err := harden(); err != nil {
		t.Fatal(err)
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil || d != 0 {
		t.Fatalf("PR_GET_DUMPABLE = %d, %v; want 0", d, err)
	}
}
