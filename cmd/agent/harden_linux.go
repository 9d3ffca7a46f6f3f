package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// harden makes the agent process non-dumpable. Its environment holds its
// key and certificate (ECS injects MTLS_KEY and MTLS_CERT), and a process
// of the same user may otherwise read /proc/<agent>/environ and
// /proc/<agent>/mem or attach to it: an extractor worker, should the
// kernel lack Landlock (which denies workers every file), is such a
// process. Non-dumpable, those files belong to root and need
// CAP_SYS_PTRACE, and no core file is written. Workers are not affected:
// exec makes them dumpable again, and they hold no secret.
func harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}
