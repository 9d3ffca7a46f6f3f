package sandbox

import (
	"errors"
	"strings"
	"time"
)

// Errors callers branch on with errors.Is. A run that ends without a result
// returns a *RunError whose Kind is one of the outcome sentinels below; the
// other sentinels are returned as they are (wrapped with %w).
var (
	// ErrBusy: no worker slot (or not enough of the document byte budget)
	// became free before the caller's context ended. Transient: the server
	// answers -32002 "extractor busy". The returned error also wraps the
	// context's error.
	ErrBusy = errors.New("sandbox: no worker free before the deadline")

	// ErrTimeLimit: the worker was still running when the wall-clock limit
	// (Config.Timeout, or the caller's deadline when that came first)
	// passed; it was killed with its process group. When the caller's
	// deadline was the binding limit the error also matches
	// context.DeadlineExceeded, so a caller can tell its own deadline from
	// the configured limit.
	ErrTimeLimit = errors.New("sandbox: time limit")

	// ErrMemoryLimit: the worker died of its memory limit: the Go runtime
	// stopped with "out of memory" (an allocation the address-space limit
	// refused) or "stack overflow" (the goroutine stack limit).
	ErrMemoryLimit = errors.New("sandbox: memory limit")

	// ErrCPULimit: the kernel killed the worker at its CPU-time limit. The
	// parent's wall-clock timer normally comes first; this is the backstop.
	ErrCPULimit = errors.New("sandbox: cpu limit")

	// ErrCrashed: the worker exited non-zero or was killed by a signal for
	// a reason other than a limit (a panic, a fatal runtime error).
	ErrCrashed = errors.New("sandbox: worker crashed")

	// ErrMalformedOutput: the worker exited 0 but its standard output is
	// not exactly one valid result frame.
	ErrMalformedOutput = errors.New("sandbox: malformed worker output")

	// ErrOutputTooLarge: the result would pass Config.MaxOutputBytes,
	// either reported by the worker (its writer refused the write) or
	// seen by the parent (the worker wrote past the cap and was killed).
	ErrOutputTooLarge = errors.New("sandbox: output too large")

	// ErrMalformedDocument: the worker's parse function reported that the
	// document cannot be parsed. Permanent. RunError.Message holds the
	// parser's (sanitised, bounded) reason.
	ErrMalformedDocument = errors.New("sandbox: malformed document")

	// ErrSetup: the worker could not be started or refused to run because
	// it could not put its limits in place (or found a descriptor it did
	// not expect). Not the document's fault: an internal error.
	ErrSetup = errors.New("sandbox: worker setup failed")

	// ErrDocumentTooLarge: the document is larger than
	// Config.MaxDocumentBytes (or than the size admitted for it).
	ErrDocumentTooLarge = errors.New("sandbox: document too large")

	// ErrUnknownKind: no worker function is registered under that kind.
	ErrUnknownKind = errors.New("sandbox: unknown worker kind")

	// ErrConfig: NewPool was given an unusable Config.
	ErrConfig = errors.New("sandbox: invalid configuration")

	// ErrNotInstalled: Main was not called at program start, so a
	// re-executed binary would not become a worker.
	ErrNotInstalled = errors.New("sandbox: sandbox.Main was not called at program start")

	// ErrUnsupported: the sandbox runs on Linux only.
	ErrUnsupported = errors.New("sandbox: unsupported operating system (Linux only)")

	// ErrAdmissionUsed: Admission.Run was called twice, or after Release.
	ErrAdmissionUsed = errors.New("sandbox: admission already used")
)

// RunError is a run that ended without a result. Kind is the outcome
// sentinel (ErrTimeLimit, ErrMemoryLimit, ErrCPULimit, ErrCrashed,
// ErrMalformedOutput, ErrOutputTooLarge, ErrMalformedDocument or ErrSetup);
// errors.Is(err, Kind) holds.
type RunError struct {
	Kind error
	// Message is the parser's reason for ErrMalformedDocument: at most
	// MaxMessageBytes of valid UTF-8 without control characters. It is
	// derived from hostile input: bounded and clean, but not to be trusted.
	Message string
	// Exit is how the worker ended ("exit status 2", "signal: killed"), or
	// "" when it exited 0.
	Exit string
	// Stderr is the first bytes the worker wrote to its standard error (a
	// panic or fatal-error message), for logs only: never return it to a
	// client. Its bytes may come from the document.
	Stderr string
	// CPUTime is the CPU time (user and system) the worker used, from the
	// resource usage of the reaped process; zero when it was not started.
	// With Wall it tells a worker that used its time from one starved of
	// CPU by the others (ErrTimeLimit).
	CPUTime time.Duration
	// Wall is the wall-clock limit the run had: Config.Timeout, or less
	// when the caller's deadline came first.
	Wall time.Duration
	// cause is context.DeadlineExceeded when the caller's deadline was the
	// binding time limit, or the context's error when the run was
	// abandoned.
	cause error
	// killedByParent: the parent killed the worker for this outcome.
	killedByParent bool
}

// Error reads "sandbox: memory limit (exit status 2)".
func (e *RunError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	if e.Exit != "" {
		b.WriteString(" (")
		b.WriteString(e.Exit)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns Kind and, when present, the context error that set the
// limit.
func (e *RunError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Kind, e.cause}
	}
	return []error{e.Kind}
}

// Cause is a short description a server may pass on to its client: the
// parser's message for a malformed document, otherwise the outcome ("time
// limit", "memory limit", "cpu limit", "crash", "malformed worker output",
// "output too large", "worker setup failed"). It never holds stderr.
func (e *RunError) Cause() string {
	switch e.Kind {
	case ErrMalformedDocument:
		if e.Message != "" {
			return e.Message
		}
		return "malformed document"
	case ErrCrashed:
		return "crash"
	}
	return strings.TrimPrefix(e.Kind.Error(), "sandbox: ")
}

// killedByLimit says whether an outcome counts in Stats.KilledSinceStart:
// the worker was ended by a limit, not by its caller or its own failure.
func (e *RunError) killedByLimit() bool {
	switch e.Kind {
	case ErrMemoryLimit, ErrCPULimit:
		return true
	case ErrTimeLimit, ErrOutputTooLarge:
		return e.killedByParent
	}
	return false
}
