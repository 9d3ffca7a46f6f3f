//go:build linux && race

package sandbox

// A race-enabled worker would sleep a second before exiting (ThreadSanitizer's
// atexit_sleep_ms); race builds are for tests, which start many workers.
func init() { workerEnv = append(workerEnv, "GORACE=atexit_sleep_ms=0") }
