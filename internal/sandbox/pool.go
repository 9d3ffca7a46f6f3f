package sandbox

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Defaults, taken when a Config field is zero (the extractor's EXTRACT_*
// defaults).
const (
	DefaultWorkers          = 4                // EXTRACT_WORKERS
	DefaultTimeout          = 20 * time.Second // EXTRACT_TIMEOUT
	DefaultMemoryLimit      = 256 << 20        // EXTRACT_MEMORY_LIMIT
	DefaultMaxDocumentBytes = 20 << 20         // EXTRACT_MAX_BYTES
	DefaultMaxOutputBytes   = 1 << 20          // the 1 MiB hop limit
	defaultExecutable       = "/proc/self/exe"

	maxTimeout     = 24 * time.Hour
	maxBytes       = 1 << 30 // a document or a result
	maxMemoryLimit = 1 << 40
)

// MinMemoryLimit is the smallest Config.MemoryLimit accepted. The Go runtime
// reserves its heap in 64 MiB arenas of address space, counted whole by
// RLIMIT_AS however little of one is used: with less than one arena plus
// the runtime's own metadata of room, a worker needing a few MiB of heap
// dies at random (measured: 64 MiB of room lets a 4 MiB heap fail; 96 MiB
// holds 72 MiB of live heap every time). A parse can count on about
// MemoryLimit - 64 MiB of live heap.
const MinMemoryLimit = 128 << 20

// Config sets a Pool's limits. Zero fields take the defaults above.
type Config struct {
	// Workers is the number of parses running at once (EXTRACT_WORKERS).
	Workers int
	// Timeout is the wall-clock limit of one parse (EXTRACT_TIMEOUT); the
	// caller's deadline bounds it too. The worker's CPU-time limit is
	// derived from it. At most 24 hours.
	Timeout time.Duration
	// MemoryLimit is the address space a worker may add to what the Go
	// runtime reserved at start (EXTRACT_MEMORY_LIMIT); at least
	// MinMemoryLimit. The worker's soft heap goal (GOMEMLIMIT) is 3/4 of
	// it, its goroutine stack limit 1/4.
	MemoryLimit int64
	// MaxDocumentBytes bounds one document (EXTRACT_MAX_BYTES); at most
	// 1 GiB.
	MaxDocumentBytes int64
	// MaxOutputBytes bounds one result; at most 1 GiB. MaxDocumentBytes +
	// MaxOutputBytes must be below MemoryLimit, which holds both in the
	// worker.
	MaxOutputBytes int64
	// MemoryBudget bounds the bytes of all documents admitted at once
	// (waiting for or holding a slot). Default Workers × MaxDocumentBytes;
	// at least MaxDocumentBytes.
	MemoryBudget int64
	// Executable is the binary re-executed as a worker; default
	// /proc/self/exe, the running binary even if its file was replaced.
	Executable string
}

func (c Config) withDefaults() (Config, error) {
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = DefaultMemoryLimit
	}
	if c.MaxDocumentBytes == 0 {
		c.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.Executable == "" {
		c.Executable = defaultExecutable
	}
	switch {
	case c.Workers < 1 || c.Workers > 1024:
		return c, fmt.Errorf("%w: workers %d not in 1..1024", ErrConfig, c.Workers)
	case c.Timeout < 0 || c.Timeout > maxTimeout:
		return c, fmt.Errorf("%w: timeout %s not in 0..%s", ErrConfig, c.Timeout, maxTimeout)
	case c.MemoryLimit < MinMemoryLimit || c.MemoryLimit > maxMemoryLimit:
		return c, fmt.Errorf("%w: memory limit %d bytes not in %d..%d", ErrConfig, c.MemoryLimit, MinMemoryLimit, int64(maxMemoryLimit))
	case c.MaxDocumentBytes < 0 || c.MaxDocumentBytes > maxBytes:
		return c, fmt.Errorf("%w: max document bytes %d not in 1..%d", ErrConfig, c.MaxDocumentBytes, maxBytes)
	case c.MaxOutputBytes < 0 || c.MaxOutputBytes > maxBytes:
		return c, fmt.Errorf("%w: max output bytes %d not in 1..%d", ErrConfig, c.MaxOutputBytes, maxBytes)
	case c.MaxDocumentBytes+c.MaxOutputBytes >= c.MemoryLimit:
		return c, fmt.Errorf("%w: max document bytes + max output bytes (%d) must be below the memory limit (%d)", ErrConfig, c.MaxDocumentBytes+c.MaxOutputBytes, c.MemoryLimit)
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = int64(c.Workers) * c.MaxDocumentBytes
	}
	if c.MemoryBudget < c.MaxDocumentBytes {
		return c, fmt.Errorf("%w: memory budget %d below max document bytes %d", ErrConfig, c.MemoryBudget, c.MaxDocumentBytes)
	}
	return c, nil
}

// Pool runs parses in worker processes: at most Config.Workers at once, and
// documents admitted at once within Config.MemoryBudget bytes. It starts no
// goroutine of its own and needs no Close. Safe for concurrent use.
type Pool struct {
	cfg    Config
	slots  *semaphore.Weighted
	budget *semaphore.Weighted
	busy   atomic.Int64
	killed atomic.Uint64
	// cpuSeconds turns the wall-clock limit of a run into the worker's
	// RLIMIT_CPU; tests shorten it to reach the CPU backstop.
	cpuSeconds func(wall time.Duration) uint64
	// landlock is the kernel's Landlock ABI version (0: none).
	landlock int
}

// NewPool checks cfg and returns a Pool. It fails with ErrNotInstalled
// unless Main has run in this process, with ErrConfig on a bad Config, and
// with ErrUnsupported outside Linux.
func NewPool(cfg Config) (*Pool, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if !mainCalled.Load() {
		return nil, ErrNotInstalled
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Pool{
		cfg:        cfg,
		slots:      semaphore.NewWeighted(int64(cfg.Workers)),
		budget:     semaphore.NewWeighted(cfg.MemoryBudget),
		cpuSeconds: cpuBackstop,
		landlock:   landlockABI(),
	}, nil
}

// LandlockABI is the Landlock ABI version of the kernel, read when the
// pool was made: what confines the workers (filesystem from 1, TCP from
// 4, signals and abstract sockets from 6). 0: the kernel has no Landlock,
// and workers run without filesystem or network confinement, with the
// other limits only.
func (p *Pool) LandlockABI() int { return p.landlock }

// cpuBackstop is the soft CPU-time limit for a run of wall-clock limit wall:
// whole seconds rounded up, plus one so that the parent's timer, not the
// kernel, ends an ordinary overrun (the backstop matters when the parent
// cannot act, or when a worker burns more than one CPU). The hard limit is
// one second more.
func cpuBackstop(wall time.Duration) uint64 {
	return uint64((wall+time.Second-1)/time.Second) + 1
}

// Config returns the pool's configuration with defaults applied.
func (p *Pool) Config() Config { return p.cfg }

// Stats are the pool's counters, for /health (check "extract_workers") and
// metrics.
type Stats struct {
	// Busy is the number of slots held now (a document admitted and not
	// yet parsed, or a worker running).
	Busy int `json:"busy"`
	// Total is the number of slots (Config.Workers).
	Total int `json:"total"`
	// KilledSinceStart counts workers ended by a limit since the pool was
	// made: time, memory or CPU limit, or output past the cap. Crashes,
	// malformed documents and runs abandoned by their caller do not count.
	KilledSinceStart uint64 `json:"killed_since_start"`
}

// Stats returns the current counters.
func (p *Pool) Stats() Stats {
	return Stats{Busy: int(p.busy.Load()), Total: p.cfg.Workers, KilledSinceStart: p.killed.Load()}
}

// Admission is a document admitted to the pool: it holds a worker slot until
// its Run returns (or Release), and size bytes of the memory budget until
// Release. Use it from one goroutine.
type Admission struct {
	p        *Pool
	size     int64
	slot     bool // the slot is still held
	released bool
	used     bool
}

// Admit waits, within ctx, for a worker slot and size bytes of the memory
// budget, then returns an Admission. Admit before reading a document, with
// its declared size or Config.MaxDocumentBytes when the size is unknown, so
// that the documents held in memory at once stay within the budget. It
// returns ErrDocumentTooLarge when size is over Config.MaxDocumentBytes,
// and an error matching ErrBusy (and the context's error) when ctx ends
// first.
func (p *Pool) Admit(ctx context.Context, size int64) (*Admission, error) {
	if size < 0 || size > p.cfg.MaxDocumentBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrDocumentTooLarge, size, p.cfg.MaxDocumentBytes)
	}
	if err := p.slots.Acquire(ctx, 1); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	if err := p.budget.Acquire(ctx, size); err != nil {
		p.slots.Release(1)
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	p.busy.Add(1)
	return &Admission{p: p, size: size, slot: true}, nil
}

// Run parses doc with the worker registered as kind, in a new worker
// process, and returns the result the worker wrote. The slot is free again
// when Run returns: the worker and its process group are gone and reaped.
// doc must be at most the size admitted. Run may be called once per
// Admission.
//
// Errors: a *RunError (see its Kind) for every outcome of the worker; an
// error matching the context's error when ctx was cancelled (the worker is
// killed); ErrDocumentTooLarge, ErrUnknownKind or ErrAdmissionUsed before
// anything starts.
func (a *Admission) Run(ctx context.Context, kind string, doc []byte) ([]byte, error) {
	if a.used || a.released {
		return nil, ErrAdmissionUsed
	}
	a.used = true
	defer a.releaseSlot()
	if int64(len(doc)) > a.size {
		return nil, fmt.Errorf("%w: %d bytes, %d admitted", ErrDocumentTooLarge, len(doc), a.size)
	}
	if _, ok := lookup(kind); !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	out, err := a.p.execute(ctx, kind, doc)
	if err != nil {
		if re, ok := err.(*RunError); ok && re.killedByLimit() {
			a.p.killed.Add(1)
		}
		return nil, err
	}
	return out, nil
}

// Release returns the memory budget and, if Run was not called, the slot.
// It is safe to call more than once; call it when the document is no longer
// held.
func (a *Admission) Release() {
	if a.released {
		return
	}
	a.released = true
	a.releaseSlot()
	a.p.budget.Release(a.size)
}

func (a *Admission) releaseSlot() {
	if a.slot {
		a.slot = false
		a.p.busy.Add(-1)
		a.p.slots.Release(1)
	}
}

// Run admits doc (waiting within ctx, see Admit), parses it with the worker
// registered as kind and releases the admission: Admit + Admission.Run +
// Release for a caller that already holds the document.
func (p *Pool) Run(ctx context.Context, kind string, doc []byte) ([]byte, error) {
	if _, ok := lookup(kind); !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	a, err := p.Admit(ctx, int64(len(doc)))
	if err != nil {
		return nil, err
	}
	defer a.Release()
	return a.Run(ctx, kind, doc)
}
