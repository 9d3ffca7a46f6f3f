// Package sandbox runs a parser over untrusted bytes in a child process: the
// running binary re-executed as a worker, under OS limits set before it reads
// a byte, killed with its whole process group when it overruns, and always
// reaped. Linux only; elsewhere NewPool returns ErrUnsupported.
//
// # Threat
//
// Whoever can write to the documents store controls every byte a parser
// reads. A parser library (pure Go, so memory corruption is unlikely but not
// excluded) can be driven to allocate without bound (a Go "fatal error: out
// of memory", which no recover catches, ends the whole process), to loop
// forever ignoring its context, to recurse until the stack overflows, to
// panic, or to produce an answer many times its input. In process, any of
// these takes the agent down or holds a worker slot forever. In a worker,
// each is one dead child and a typed error; the agent keeps its PID, its
// memory and its slots.
//
// # Use
//
// The binary registers its parse functions and calls Main first thing:
//
//	func init() { sandbox.Register("pdf", extractPDF) } // func(doc []byte, out io.Writer) error
//
//	func main() {
//		sandbox.Main() // a worker runs here and exits; the agent goes on
//		...
//		pool, err := sandbox.NewPool(sandbox.Config{Workers: 4, Timeout: 20 * time.Second, ...})
//		...
//		out, err := pool.Run(ctx, "pdf", doc)
//	}
//
// To bound the documents held in memory, admit before reading:
//
//	a, err := pool.Admit(ctx, size) // size declared by the store, or Config.MaxDocumentBytes
//	if err != nil { ... }            // ErrBusy: -32002
//	defer a.Release()
//	doc := read(...)                 // at most size bytes
//	out, err := a.Run(ctx, "pdf", doc)
//
// Outcomes, and the JSON-RPC answers they are meant for:
//
//	nil                            the result bytes (at most MaxOutputBytes)
//	ErrBusy                        transient: -32002 "extractor busy"
//	*RunError, Kind:
//	  ErrMalformedDocument         permanent: -32602 "document could not be parsed: " + Cause()
//	  ErrTimeLimit, ErrMemoryLimit,
//	  ErrCPULimit, ErrCrashed,
//	  ErrMalformedOutput           permanent: -32602 with Cause() ("time limit", ...)
//	  ErrOutputTooLarge            -32012 (the result would pass the hop limit)
//	  ErrSetup                     internal: -32603 (the worker could not be set up)
//	context.Canceled               the caller left; nobody to answer
//
// A time limit set by the caller's own deadline also matches
// context.DeadlineExceeded. RunError.CPUTime (the reaped worker's user and
// system time) against RunError.Wall (its wall-clock limit) tells a worker
// that used its time from one that other workers starved of CPU, which says
// nothing about the document (the extractor answers that one -32002).
// RunError.Stderr (the head of the worker's standard error) is for logs
// only.
//
// # Limits and what each defends
//
// Set by the parent when starting the worker:
//
//   - Environment: GOMAXPROCS=1, GODEBUG=containermaxprocs=0 and
//     MALLOC_ARENA_MAX=1 (for binaries built with cgo, whose glibc would
//     otherwise reserve 64 MiB arenas of address space), nothing else.
//     The agent's environment holds its key and certificate (ECS injects
//     them as MTLS_KEY and MTLS_CERT); none of it reaches the worker.
//   - Working directory "/"; no descriptors but stdin, stdout and stderr
//     (exec.Cmd with no ExtraFiles; Go opens everything close-on-exec).
//   - Its own process group (Setpgid) and SIGKILL when the agent dies
//     (Pdeathsig).
//   - Wall-clock limit: the smaller of Config.Timeout and the caller's
//     deadline. When it passes, or the caller cancels, the parent sends
//     SIGKILL to the whole group, so a process the worker started dies too.
//   - Output cap: stdout is read up to the frame for MaxOutputBytes; one byte
//     more and the group is killed (ErrOutputTooLarge). Stderr keeps its
//     first 8 KiB and drains the rest, so a worker never blocks on it.
//
// Set by the worker on itself in Main, before it reads the document:
//
//   - Descriptors: any above 2 without close-on-exec crossed the exec (the
//     agent inherited it from its own parent) and is closed; one with
//     close-on-exec was opened in the worker before Main and stops it
//     (ErrSetup), unless it is the Go runtime's network poller (an epoll
//     and an eventfd, no data), which any os.Open in an init function
//     starts. /proc/self/fd is then checked again.
//   - RLIMIT_AS = the address space in use at start + Config.MemoryLimit. An
//     allocation past it fails and the Go runtime dies with "fatal error:
//     out of memory" (exit 2), which the parent reports as ErrMemoryLimit.
//     The soft heap goal (debug.SetMemoryLimit, GOMEMLIMIT's setting) is 3/4
//     of the limit, so the collector works hard before an allocation is
//     refused; the goroutine stack limit (debug.SetMaxStack) is 1/4, so deep
//     recursion on nested input ends as "stack overflow" (also
//     ErrMemoryLimit) rather than exhausting the address space.
//   - RLIMIT_CPU = the wall-clock limit in whole seconds, rounded up, plus
//     one: a backstop for when the parent's timer cannot act, or the worker
//     burns more than one CPU. At the soft limit the kernel sends SIGXCPU,
//     which the worker turns into exit code 72; the hard limit, one second
//     later, is SIGKILL.
//   - RLIMIT_CORE 0 (no core file holding document bytes), RLIMIT_FSIZE 0 (no
//     file written; pipes are not files), RLIMIT_NOFILE 8, RLIMIT_MEMLOCK 0,
//     RLIMIT_MSGQUEUE 0. The hard limits are set too, never above the
//     inherited ones, so the worker cannot raise them back.
//   - GOMAXPROCS 1: one parse needs one CPU; the pool's Workers bound the
//     CPUs in use.
//   - PR_SET_NO_NEW_PRIVS on every thread, then Landlock (best effort, via
//     go-landlock, every thread): no filesystem access at all (open, read,
//     write, execute, create), so no certificate or key file, and no
//     /proc/<agent>/environ, which a same-user process could otherwise read;
//     no TCP bind or connect (Landlock ABI 4+); no signal to, or abstract
//     socket of, a process outside the worker (ABI 6+). A kernel without
//     Landlock runs the worker with the other limits only; a kernel that has
//     it and fails to apply it stops the worker (ErrSetup).
//
// The environment is not used to pass limits: the worker's command line is
// "sandbox-worker __sandbox-worker KIND 1 DOCLEN MEMORYLIMIT CPUSECONDS
// MAXOUTPUT", written by the parent.
//
// # Address space of a Go process (measured, linux/amd64, Go 1.26)
//
// The Go runtime reserves about 1.2-1.4 GiB of address space before main
// runs (page-allocator summaries, the first heap arena), nearly all of it
// PROT_NONE. Under an RLIMIT_AS set before exec a Go binary does not start
// below about 700-768 MiB ("failed to reserve page summary memory" up to 512
// MiB, "out of memory" at 640-704 MiB). That is why the worker sets
// RLIMIT_AS itself, relative to what it holds at start, and why
// EXTRACT_MEMORY_LIMIT means the room a parse may add. The heap then grows
// by 64 MiB arena reservations, which count whole against RLIMIT_AS: with 64
// MiB of room a worker needing 4 MiB of heap died at random, with 96 MiB it
// held 72 MiB of live heap every time, with 256 MiB 192 MiB. So
// MinMemoryLimit is 128 MiB and a parse can count on about MemoryLimit - 64
// MiB of live heap; the document and the result (at most MaxDocumentBytes +
// MaxOutputBytes) live in it.
//
// # Result protocol
//
// Stdin carries exactly DOCLEN bytes, then end of file. Stdout carries one
// frame and nothing else:
//
//	"SBX1" | status (1 byte) | payload length (4 bytes, big-endian) | payload
//
// with status 'O' (payload: the result, at most MaxOutputBytes), 'M' (the
// document is malformed; payload: the parser's reason, UTF-8 without control
// characters, at most MaxMessageBytes) or 'L' (the parser's writer refused a
// write past MaxOutputBytes; empty payload). The parent accepts a frame only
// from a worker that exited 0; anything else on stdout (a wrong magic,
// status or length, a cut or trailing byte, an invalid reason) is
// ErrMalformedOutput. The worker points os.Stdout at stderr before calling
// the parser, so a printing library cannot corrupt the frame.
//
// Exit codes: 0 with a frame; 2 a Go panic or fatal error (out of memory,
// stack overflow: ErrMemoryLimit; otherwise ErrCrashed); 71 setup failed
// (ErrSetup); 72, or killed by SIGKILL with CPU time at the hard limit:
// ErrCPULimit. Any other exit or signal is ErrCrashed.
//
// # Pool
//
// Config.Workers slots; a request waits for one only within its context, then
// gets ErrBusy. Admit also takes the document's size from a byte budget
// (Config.MemoryBudget, a weighted semaphore), so documents held at once are
// bounded by count and by bytes. A slot is free the moment Run returns: the
// worker's group has been killed and the worker reaped (no zombie), and every
// goroutine of the run has ended. One process per parse: no state, and no
// document, outlives it.
//
// # Cost (BenchmarkSandbox, CGO_ENABLED=0, 2 shared vCPUs, several runs)
//
// Parsing a 1 MiB CSV and writing a small JSON result takes 3.7-3.9 ms in
// process and 7.9-8.5 ms in a worker: 4-5 ms more a document, a ratio of
// about 2.2 for this cheap parse (it shrinks as the parse grows). The fixed
// cost of a worker (empty document) is 1.6-2.6 ms, of which starting and
// ending a Go process is about 1.4 ms (an exec of /bin/true alone is 0.7 ms)
// and the limits with Landlock about 0.2 ms; piping 1 MiB in adds about 1
// ms; the rest is the parse in a fresh process (page faults on a cold heap,
// GOMAXPROCS 1). Process start-up dominates. Reusing workers would save it
// at the price of state (and documents) surviving between parses; it is
// not done.
//
// # What this does not stop
//
//   - A process that leaves the worker's group (setsid) escapes the group
//     kill. A confined worker cannot execute a program, but nothing but a
//     seccomp filter (not used: per-architecture system-call numbers and a
//     Go runtime whose own system calls change between releases make one
//     brittle) stops a raw fork. The parent still returns: it stops reading
//     the pipes a second after the group is dead.
//   - RLIMIT_NPROC is not set: it counts every process and thread of the
//     user, the agent's included, and root ignores it.
//   - Pdeathsig follows the thread that started the worker, and a thread
//     exits when a goroutine ends locked to it; the run therefore holds its
//     thread (runtime.LockOSThread) from the fork until the worker is
//     reaped, so no such goroutine can end the worker early.
//   - Without Landlock a worker can open any file its user can read; the
//     agent can keep /proc/<pid>/environ from its own user with
//     prctl(PR_SET_DUMPABLE, 0).
package sandbox
