package sandbox

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
)

// Func is one kind of parse, run inside a worker process. doc is the whole
// document. The function writes its result to out, which refuses (with
// ErrOutputTooLarge, writing nothing) any write that would take the result
// past Config.MaxOutputBytes; once a write has been refused the run reports
// ErrOutputTooLarge whatever the function returns. A function that knows
// before writing that its result cannot fit returns an error wrapping
// ErrOutputTooLarge, with the same outcome. Any other non-nil error means
// the document cannot be parsed: the parent gets a *RunError of kind
// ErrMalformedDocument carrying the error's text (sanitised, cut to
// MaxMessageBytes).
//
// A Func runs after the limits are in place and may fail in any way (panic,
// loop, allocate without bound): the worker dies and the parent reports it.
// It must not expect files, network, environment or a working directory.
// Anything it prints to os.Stdout goes to standard error: only out reaches
// the result.
type Func func(doc []byte, out io.Writer) error

// workerArg is argv[1] of a re-executed worker; argv[2] is the kind.
const workerArg = "__sandbox-worker"

type entry struct {
	fn Func
	// confined is false only for test workers that must start a
	// process (the process-group test); production kinds always are.
	confined bool
}

var (
	regMu      sync.Mutex
	registry   = map[string]entry{}
	mainCalled atomic.Bool
)

var kindRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Register makes fn the worker for kind (1-32 characters of a-z, 0-9, '_',
// '-'). Call it from an init function, or from main before Main: the worker
// process is the same binary and only finds kinds registered before Main
// runs. It panics on an invalid or duplicate kind, or when called after Main.
func Register(kind string, fn Func) {
	register(kind, fn, true)
}

func register(kind string, fn Func, confined bool) {
	if !kindRE.MatchString(kind) {
		panic(fmt.Sprintf("sandbox: invalid worker kind %q", kind))
	}
	if fn == nil {
		panic("sandbox: nil worker function for " + kind)
	}
	if mainCalled.Load() {
		panic("sandbox: Register(" + kind + ") after Main")
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[kind]; dup {
		panic("sandbox: worker kind registered twice: " + kind)
	}
	registry[kind] = entry{fn: fn, confined: confined}
}

func lookup(kind string) (entry, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	e, ok := registry[kind]
	return e, ok
}

// Main must be the first statement of the program's main (or TestMain): in a
// process the Pool started as a worker it runs the worker and exits, never
// returning; in any other process it returns at once. NewPool refuses to
// work until Main has run, so a binary that forgot it cannot re-execute
// itself as something else.
func Main() {
	mainCalled.Store(true)
	if len(os.Args) < 2 || os.Args[1] != workerArg {
		return
	}
	os.Exit(runWorker(os.Args[2:]))
}

// Worker exit codes other than 0 that the parent recognises. Go itself exits
// 2 on a panic or fatal runtime error.
const (
	exitSetup    = 71 // EX_OSERR: a limit could not be set, or a descriptor was found open
	exitCPULimit = 72 // the soft CPU-time limit was reached
)
