//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// workerSpec is what the parent passes on the worker's command line; the
// environment carries nothing but workerEnv.
type workerSpec struct {
	kind        string
	docLen      int64
	memoryLimit int64
	cpuSeconds  uint64
	maxOutput   int64
}

const specVersion = "1"

func (s workerSpec) args() []string {
	return []string{workerArg, s.kind, specVersion,
		strconv.FormatInt(s.docLen, 10),
		strconv.FormatInt(s.memoryLimit, 10),
		strconv.FormatUint(s.cpuSeconds, 10),
		strconv.FormatInt(s.maxOutput, 10)}
}

func parseSpec(args []string) (workerSpec, error) {
	if len(args) != 6 || args[1] != specVersion {
		return workerSpec{}, errors.New("unexpected worker arguments")
	}
	var s workerSpec
	var err error
	s.kind = args[0]
	num := func(v string, lo, hi int64) int64 {
		n, e := strconv.ParseInt(v, 10, 64)
		if e != nil || n < lo || n > hi {
			err = fmt.Errorf("worker argument %q out of range", v)
		}
		return n
	}
	s.docLen = num(args[2], 0, maxBytes)
	s.memoryLimit = num(args[3], MinMemoryLimit, maxMemoryLimit)
	s.cpuSeconds = uint64(num(args[4], 1, int64(cpuBackstop(maxTimeout))))
	s.maxOutput = num(args[5], 0, maxBytes)
	return s, err
}

// runWorker is the worker process: limits first, then the document, then
// the parse. It returns the exit code.
func runWorker(args []string) int {
	spec, err := parseSpec(args)
	if err != nil {
		return setupFailed(err)
	}
	e, ok := lookup(spec.kind)
	if !ok {
		return setupFailed(fmt.Errorf("unknown kind %q", spec.kind))
	}
	if err := closeInheritedFDs(); err != nil {
		return setupFailed(err)
	}
	if err := applyLimits(spec); err != nil {
		return setupFailed(err)
	}
	if e.confined {
		if err := confine(); err != nil {
			return setupFailed(err)
		}
	}
	// Only now is a document byte read.
	doc, err := readDocument(os.Stdin, spec.docLen)
	if err != nil {
		return setupFailed(err)
	}
	result := os.Stdout
	// A library that prints must not corrupt the result stream.
	os.Stdout = os.Stderr
	w := newLimitWriter(spec.maxOutput)
	perr := e.fn(doc, w)
	var frame []byte
	switch {
	case w.exceeded || errors.Is(perr, ErrOutputTooLarge):
		frame = encodeFrame(statusOutputLimit, nil)
	case perr != nil:
		frame = encodeFrame(statusMalformedDoc, []byte(sanitizeMessage(perr.Error())))
	default:
		frame = w.frame()
	}
	if _, err := result.Write(frame); err != nil {
		// The parent is gone or gave up on us; nobody reads an exit code
		// but keep it non-zero.
		return 1
	}
	return 0
}

func setupFailed(err error) int {
	fmt.Fprintln(os.Stderr, "sandbox: worker setup:", err)
	return exitSetup
}

// closeInheritedFDs leaves the worker with descriptors 0-2 only, and the
// Go runtime's network poller if an init function started it. Every
// descriptor the Go runtime opens is close-on-exec, so one open at this
// point without FD_CLOEXEC crossed the exec: the agent inherited it from
// its own parent (a shell, an init) and exec passes such descriptors on.
// Those are closed. One with FD_CLOEXEC was opened in this process before
// Main (an init function): that is a bug the worker refuses to run with,
// except for the poller's epoll and eventfd descriptors, which any os.Open
// in an init creates (google.golang.org/protobuf hashes its own executable
// at init, for one), hold no data and cannot be closed under the runtime.
func closeInheritedFDs() error {
	fds, err := openFDs()
	if err != nil {
		return err
	}
	for _, fd := range fds {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue // the listing's own descriptor, closed since
		}
		if flags&unix.FD_CLOEXEC != 0 {
			if runtimePoller(fd) {
				continue
			}
			return fmt.Errorf("descriptor %d opened before the worker started", fd)
		}
		if err := unix.Close(fd); err != nil {
			return fmt.Errorf("close inherited descriptor %d: %w", fd, err)
		}
	}
	fds, err = openFDs()
	if err != nil {
		return err
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && !runtimePoller(fd) {
			return fmt.Errorf("descriptor %d still open", fd)
		}
	}
	return nil
}

// runtimePoller reports whether fd is an epoll or eventfd instance, the two
// descriptors of the Go runtime's network poller.
func runtimePoller(fd int) bool {
	var buf [64]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf[:])
	if err != nil {
		return false
	}
	switch string(buf[:n]) {
	case "anon_inode:[eventpoll]", "anon_inode:[eventfd]":
		return true
	}
	return false
}

// openFDs lists the descriptors above 2 in /proc/self/fd.
func openFDs() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, fmt.Errorf("list descriptors: %w", err)
	}
	var fds []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			return nil, fmt.Errorf("list descriptors: unexpected entry %q", e.Name())
		}
		if fd > 2 {
			fds = append(fds, fd)
		}
	}
	return fds, nil
}

// Worker limits other than the address space.
const (
	workerNoFile = 8 // 0-2 and what the landlock set-up opens briefly
)

// applyLimits sets the resource limits (hard limits too, so the worker
// cannot raise them back) and the Go runtime's own.
func applyLimits(s workerSpec) error {
	base, err := addressSpaceInUse()
	if err != nil {
		return err
	}
	limits := []struct {
		name       string
		resource   int
		soft, hard uint64
	}{
		{"RLIMIT_CORE", unix.RLIMIT_CORE, 0, 0},   // no core file of a hostile document
		{"RLIMIT_FSIZE", unix.RLIMIT_FSIZE, 0, 0}, // no file written (pipes are not files)
		{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE, workerNoFile, workerNoFile},
		{"RLIMIT_MEMLOCK", unix.RLIMIT_MEMLOCK, 0, 0},
		{"RLIMIT_MSGQUEUE", unix.RLIMIT_MSGQUEUE, 0, 0},
		// SIGXCPU at the soft limit, which watchCPULimit turns into
		// exitCPULimit; SIGKILL one CPU-second later if it could not.
		{"RLIMIT_CPU", unix.RLIMIT_CPU, s.cpuSeconds, s.cpuSeconds + 1},
		// The Go runtime reserves about 1.2 GiB of address space before
		// main (page-allocator summaries, the first heap arena) and
		// cannot start under a few hundred MiB: the limit is what this
		// process has reserved now plus what the parse may add.
		{"RLIMIT_AS", unix.RLIMIT_AS, base + uint64(s.memoryLimit), base + uint64(s.memoryLimit)},
	}
	for _, l := range limits {
		var cur unix.Rlimit
		if err := unix.Getrlimit(l.resource, &cur); err != nil {
			return fmt.Errorf("getrlimit %s: %w", l.name, err)
		}
		// Never above the inherited hard limit: raising it needs
		// privilege, and a lower one is already stricter.
		want := unix.Rlimit{Cur: min(l.soft, cur.Max), Max: min(l.hard, cur.Max)}
		if err := unix.Setrlimit(l.resource, &want); err != nil {
			return fmt.Errorf("setrlimit %s: %w", l.name, err)
		}
	}
	watchCPULimit()
	runtime.GOMAXPROCS(1)
	// The soft heap goal below the hard limit makes the collector work
	// before an allocation is refused; a heap that still grows past it
	// meets RLIMIT_AS and the runtime dies with "out of memory".
	debug.SetMemoryLimit(s.memoryLimit - s.memoryLimit/4)
	// Deep recursion on nested input ends as "stack overflow" before the
	// stack's doubling exhausts the address space.
	debug.SetMaxStack(int(s.memoryLimit / 4))
	return nil
}

// watchCPULimit ends the worker with exitCPULimit when the kernel signals
// the soft CPU limit (the Go runtime ignores SIGXCPU by default), so the
// parent can tell the limit from any other death.
func watchCPULimit() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGXCPU)
	go func() {
		<-c
		fmt.Fprintln(os.Stderr, "sandbox: cpu limit")
		os.Exit(exitCPULimit)
	}()
}

// addressSpaceInUse reads VmSize, the address space this process holds. It
// reads with plain system calls: an *os.File would start the runtime's
// network poller and leave its two descriptors open in the worker.
func addressSpaceInUse() (uint64, error) {
	fd, err := unix.Open("/proc/self/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("read address space in use: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 16<<10)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read address space in use: %w", err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return n << 10, nil
				}
			}
		}
	}
	return 0, errors.New("read address space in use: no VmSize in /proc/self/status")
}

// landlockABI asks the kernel for its Landlock ABI version; 0 when it has
// none (or it is disabled).
func landlockABI() int {
	v, err := llsyscall.LandlockGetABIVersion()
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// confine forbids privilege gain on every thread and, where the kernel has
// Landlock, every filesystem access (open, create, execute, even read-only),
// TCP bind and connect, signals to and abstract sockets of processes outside
// the worker. A kernel without Landlock runs the worker with the
// other limits only (best effort); Landlock failing on a kernel that has it
// stops the worker.
func confine() error {
	if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", errno)
	}
	if err := landlock.V11.BestEffort().Restrict(); err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	return nil
}

// readDocument reads exactly n bytes, then expects the end of the stream.
func readDocument(r io.Reader, n int64) ([]byte, error) {
	doc := make([]byte, n)
	if _, err := io.ReadFull(r, doc); err != nil {
		return nil, fmt.Errorf("read document: %w", err)
	}
	var one [1]byte
	if m, err := r.Read(one[:]); m != 0 || err != io.EOF {
		return nil, errors.New("read document: more bytes than announced")
	}
	return doc, nil
}

// limitWriter collects the result after room for the frame header, refusing
// any write that would pass max.
type limitWriter struct {
	buf      []byte
	max      int64
	exceeded bool
}

func newLimitWriter(max int64) *limitWriter {
	return &limitWriter{buf: make([]byte, frameHeaderLen, frameHeaderLen+min(max, 64<<10)), max: max}
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.exceeded || int64(len(w.buf)-frameHeaderLen)+int64(len(p)) > w.max {
		w.exceeded = true
		return 0, ErrOutputTooLarge
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *limitWriter) frame() []byte {
	putHeader(w.buf, statusOK, len(w.buf)-frameHeaderLen)
	return w.buf
}
