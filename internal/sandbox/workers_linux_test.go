//go:build linux

package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// The test binary is its own worker: TestMain calls Main first, so a Pool
// re-executing /proc/self/exe lands in one of the kinds registered here.
// testSleepArg makes the binary a plain sleeping process, the grandchild
// some workers start.
const testSleepArg = "__sandbox-test-sleep"

func TestMain(m *testing.M) {
	openBeforeMain()
	Main()
	if len(os.Args) > 1 && os.Args[1] == testSleepArg {
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// openBeforeMain plays, in the workers of two kinds, an init function that
// opens a file before Main: one that closes it again (as
// google.golang.org/protobuf does, hashing its executable), which leaves
// the runtime's poller behind, and one that keeps it open.
func openBeforeMain() {
	if len(os.Args) < 3 || os.Args[1] != workerArg {
		return
	}
	switch os.Args[2] {
	case "poller-before-main":
		if f, err := os.Open("/proc/self/exe"); err == nil {
			f.Close()
		}
	case "file-before-main":
		keptOpen, _ = os.Open("/proc/self/exe")
	}
}

var (
	keptOpen *os.File
	sink     []byte
	kept     [][]byte
)

func init() {
	Register("echo", func(doc []byte, out io.Writer) error {
		_, err := out.Write(doc)
		return err
	})
	Register("print", func(doc []byte, out io.Writer) error {
		// Goes to stderr: a printing library cannot corrupt the frame.
		fmt.Println("noise from a library")
		_, err := out.Write(doc)
		return err
	})
	Register("malformed", func([]byte, io.Writer) error {
		return errors.New("pdf: xref entry 10^12 \x00\x1b[31m out of range")
	})
	Register("too-large", func(doc []byte, out io.Writer) error {
		for {
			if _, err := out.Write(doc); err != nil {
				return err
			}
		}
	})
	Register("says-too-large", func([]byte, io.Writer) error {
		return fmt.Errorf("%w: one record of 20 MiB", ErrOutputTooLarge)
	})
	Register("swallow-too-large", func(doc []byte, out io.Writer) error {
		for range 1 << 20 {
			_, _ = out.Write(doc) // errors ignored: the run must still say too large
		}
		return nil
	})
	Register("flood", func([]byte, io.Writer) error {
		// Past the frame writer, straight to the result descriptor.
		raw := os.NewFile(1, "raw")
		chunk := make([]byte, 64<<10)
		for {
			if _, err := raw.Write(chunk); err != nil {
				return err
			}
		}
	})
	Register("garbage", func(doc []byte, out io.Writer) error {
		_, _ = os.NewFile(1, "raw").Write([]byte("not a frame"))
		_, err := out.Write(doc)
		return err
	})
	Register("truncated", func([]byte, io.Writer) error {
		f := encodeFrame(statusOK, []byte("0123456789"))
		_, _ = os.NewFile(1, "raw").Write(f[:len(f)-3])
		os.Exit(0)
		return nil
	})
	Register("panic", func([]byte, io.Writer) error {
		panic("boom: parser bug")
	})
	Register("exit3", func([]byte, io.Writer) error {
		os.Exit(3)
		return nil
	})
	Register("panic-says-oom", func([]byte, io.Writer) error {
		panic("out of memory (a parser's own words)")
	})
	Register("alloc-huge", func([]byte, io.Writer) error {
		sink = make([]byte, 1<<40)
		return nil
	})
	Register("alloc-grow", func([]byte, io.Writer) error {
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			kept = append(kept, b)
		}
	})
	Register("recurse", func([]byte, io.Writer) error {
		_, err := fmt.Println(recurse(0))
		return err
	})
	Register("spin", func([]byte, io.Writer) error {
		spin()
		return nil
	})
	Register("burn-then-sleep", func([]byte, io.Writer) error {
		// Uses burnCPU of CPU time (whatever the wall-clock time that
		// takes on a loaded machine), then waits without using any.
		for {
			var ru unix.Rusage
			if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
				return err
			}
			if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= burnCPU {
				break
			}
			for range 1 << 20 {
				spins++
			}
		}
		time.Sleep(time.Hour)
		return nil
	})
	Register("sleep", func([]byte, io.Writer) error {
		time.Sleep(time.Hour)
		return nil
	})
	Register("report", func(doc []byte, out io.Writer) error {
		return json.NewEncoder(out).Encode(probe(doc))
	})
	Register("poller-before-main", func(doc []byte, out io.Writer) error {
		return json.NewEncoder(out).Encode(probe(doc))
	})
	Register("file-before-main", func(doc []byte, out io.Writer) error {
		return json.NewEncoder(out).Encode(probe(doc))
	})
	// The grandchild workers start a process, which confinement forbids:
	// they run unconfined, with the other limits.
	register("grandchild-exit", func(_ []byte, out io.Writer) error {
		pid, err := startSleeper(false, [3]uintptr{0, 0, 0})
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(out, pid)
		return err
	}, false)
	register("grandchild-spin", func([]byte, io.Writer) error {
		pid, err := startSleeper(false, [3]uintptr{0, 0, 0})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "grandchild pid %d\n", pid)
		spin()
		return nil
	}, false)
	register("grandchild-holds-pipes", func([]byte, io.Writer) error {
		pid, err := startSleeper(false, [3]uintptr{0, 1, 2})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "grandchild pid %d\n", pid)
		return nil
	}, false)
	register("grandchild-escapes", func([]byte, io.Writer) error {
		pid, err := startSleeper(true, [3]uintptr{0, 1, 2})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "grandchild pid %d\n", pid)
		return nil
	}, false)
}

var spins uint64

// burnCPU is the CPU time the burn-then-sleep worker uses.
const burnCPU = 200 * time.Millisecond

func spin() {
	for {
		spins++
	}
}

// recurse never ends: nested input met by a recursive parser.
func recurse(depth int) int {
	var frame [256]byte
	frame[depth%len(frame)] = byte(depth)
	if depth < 0 {
		return 0
	}
	return recurse(depth+1) + int(frame[(depth+7)%len(frame)])
}

// startSleeper starts this binary as a sleeping grandchild with the given
// descriptors (syscall.ForkExec: os/exec would need more descriptors than
// RLIMIT_NOFILE leaves). setsid takes it out of the worker's process group.
func startSleeper(setsid bool, fds [3]uintptr) (int, error) {
	return syscall.ForkExec("/proc/self/exe", []string{"sleeper", testSleepArg}, &syscall.ProcAttr{
		Dir: "/",
		// The worker's own environment: the sleeper lives under the
		// worker's address-space limit, which a race-enabled binary
		// with glibc's default malloc arenas can outgrow at start.
		Env:   os.Environ(),
		Files: fds[:],
		Sys:   &syscall.SysProcAttr{Setsid: setsid},
	})
}

// workerReport is what the "report" worker sees of its own process.
type workerReport struct {
	DocLen     int                  `json:"doc_len"`
	FDs        []int                `json:"fds"`
	Env        []string             `json:"env"`
	Cwd        string               `json:"cwd"`
	NoNewPrivs int                  `json:"no_new_privs"`
	GOMAXPROCS int                  `json:"gomaxprocs"`
	GoMemLimit int64                `json:"gomemlimit"`
	Limits     map[string][2]uint64 `json:"limits"` // soft, hard
	OpenErr    string               `json:"open_err"`
	ExecErr    string               `json:"exec_err"`
	DialErr    string               `json:"dial_err"`
	KillErr    string               `json:"kill_err"`
}

func probe(doc []byte) workerReport {
	r := workerReport{DocLen: len(doc), Env: os.Environ(), Limits: map[string][2]uint64{}}
	// fcntl, not /proc/self/fd: the worker may not open anything.
	for fd := 0; fd < 1024; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			r.FDs = append(r.FDs, fd)
		}
	}
	r.Cwd, _ = os.Getwd()
	r.NoNewPrivs, _ = unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	r.GOMAXPROCS = runtime.GOMAXPROCS(0)
	r.GoMemLimit = debug.SetMemoryLimit(-1)
	for name, res := range map[string]int{"as": unix.RLIMIT_AS, "cpu": unix.RLIMIT_CPU, "nofile": unix.RLIMIT_NOFILE, "core": unix.RLIMIT_CORE, "fsize": unix.RLIMIT_FSIZE} {
		var l unix.Rlimit
		if unix.Getrlimit(res, &l) == nil {
			r.Limits[name] = [2]uint64{l.Cur, l.Max}
		}
	}
	if _, err := os.ReadFile("/etc/passwd"); err != nil {
		r.OpenErr = errno(err)
	}
	if err := exec.Command("/proc/self/exe", testSleepArg).Start(); err != nil {
		r.ExecErr = errno(err)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:1"); err != nil {
		r.DialErr = errno(err)
	} else {
		_ = c.Close()
	}
	// Signal 0 to the parent: refused when Landlock scopes signals.
	if err := unix.Kill(os.Getppid(), 0); err != nil {
		r.KillErr = errno(err)
	}
	return r
}

// errno reduces err to its errno name, or its text.
func errno(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

// kernelLandlockABI asks the kernel directly, independently of the code
// under test: the Landlock ABI version, 0 without Landlock.
func kernelLandlockABI() int {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */)
	if e != 0 {
		return 0
	}
	return int(v)
}
