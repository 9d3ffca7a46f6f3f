package certload

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/envconfig"
)

// Source gives the current, validated identity. Implementations may rotate
// the bundle at any time; callers ask again at every handshake.
type Source interface {
	Bundle() *Bundle
}

// Static is a Source whose bundle never changes (PEM from the environment,
// Secrets Manager at start-up, tests).
type Static struct{ b *Bundle }

// NewStatic wraps a validated bundle as a Source.
func NewStatic(b *Bundle) *Static { return &Static{b: b} }

// Bundle returns the bundle.
func (s *Static) Bundle() *Bundle { return s.b }

// Options tune loading and validation.
type Options struct {
	// Usage selects the extended key usages the leaf must carry.
	Usage Usage
	// Logger receives rotation events; nil means slog.Default().
	Logger *slog.Logger
	// PollInterval is how often file sources check for changes (default
	// DefaultPollInterval).
	PollInterval time.Duration
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// FromPEM validates PEM contents and returns a Static source.
func FromPEM(certPEM, keyPEM, caPEM []byte, origin Origin, opts Options) (*Static, error) {
	b, err := Parse(certPEM, keyPEM, caPEM, origin, opts.Usage, opts.now())
	if err != nil {
		return nil, err
	}
	return NewStatic(b), nil
}

// Files is a Source backed by three PEM files. It re-reads them when they
// change; a change that does not validate (a half-written file, a key that
// does not match yet) is logged and the previous bundle keeps serving.
type Files struct {
	certPath, keyPath, caPath string
	opts                      Options

	current atomic.Pointer[Bundle]
	mu      sync.Mutex // serialises reloads
	stamp   [3]fileStamp
	raw     [3][]byte

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

// WatchFiles loads the three files, validates them, and starts watching them
// for changes until Close. A failure of the first load is returned.
func WatchFiles(certPath, keyPath, caPath string, opts Options) (*Files, error) {
	f := &Files{
		certPath: certPath, keyPath: keyPath, caPath: caPath,
		opts: opts,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	interval := opts.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	go f.watch(interval)
	return f, nil
}

// Bundle returns the current bundle.
func (f *Files) Bundle() *Bundle { return f.current.Load() }

// Close stops watching. It is safe to call more than once.
func (f *Files) Close() error {
	f.once.Do(func() { close(f.stop) })
	<-f.done
	return nil
}

func (f *Files) watch(interval time.Duration) {
	defer close(f.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			changed, err := f.Reload()
			switch {
			case err != nil:
				f.opts.logger().Error("certificate reload failed; keeping the current certificate",
					"cert_path", f.certPath, "key_path", f.keyPath, "ca_path", f.caPath, "error", err)
			case changed:
				leaf := f.Bundle().Leaf()
				f.opts.logger().Info("certificate reloaded",
					"cert_path", f.certPath, "subject", leaf.Subject.String(),
					"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
}

// Reload re-reads the files if any of them changed and, when the new
// contents validate, publishes them. It reports whether a new bundle was
// published. On error the current bundle is kept.
func (f *Files) Reload() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	paths := [3]string{f.certPath, f.keyPath, f.caPath}
	var stamps [3]fileStamp
	for i, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return false, fmt.Errorf("certload: %s: %w", p, err)
		}
		stamps[i] = fileStamp{size: st.Size(), modTime: st.ModTime()}
	}
	if f.current.Load() != nil && stamps == f.stamp {
		return false, nil
	}
	var raw [3][]byte
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return false, fmt.Errorf("certload: %s: %w", p, err)
		}
		raw[i] = b
	}
	if f.current.Load() != nil && bytes.Equal(raw[0], f.raw[0]) && bytes.Equal(raw[1], f.raw[1]) && bytes.Equal(raw[2], f.raw[2]) {
		f.stamp = stamps // touched, not changed
		return false, nil
	}
	b, err := Parse(raw[0], raw[1], raw[2], Origin{Cert: f.certPath, Key: f.keyPath, CA: f.caPath}, f.opts.Usage, f.opts.now())
	if err != nil {
		return false, err
	}
	f.current.Store(b)
	f.stamp, f.raw = stamps, raw
	return true, nil
}

// Config says where to find the identity; it mirrors the MTLS_* variables.
// PEM contents win over paths, all three or none.
type Config struct {
	CertPath, KeyPath, CAPath string // MTLS_CERT_PATH, MTLS_KEY_PATH, MTLS_CA_CERT_PATH
	CertPEM, KeyPEM, CAPEM    string // MTLS_CERT, MTLS_KEY, MTLS_CA_CERT
}

// ConfigFromEnv reads the MTLS_* variables. Whether they fit together is
// Load's business, since a Config may also be built in code.
func ConfigFromEnv(env *envconfig.Reader) Config {
	return Config{
		CertPath: env.String("MTLS_CERT_PATH", ""), KeyPath: env.String("MTLS_KEY_PATH", ""), CAPath: env.String("MTLS_CA_CERT_PATH", ""),
		CertPEM: env.Raw("MTLS_CERT"), KeyPEM: env.Raw("MTLS_KEY"), CAPEM: env.Raw("MTLS_CA_CERT"),
	}
}

// HasPEM reports whether any PEM content variable is set.
func (c Config) HasPEM() bool { return c.CertPEM != "" || c.KeyPEM != "" || c.CAPEM != "" }

// HasPaths reports whether any path variable is set.
func (c Config) HasPaths() bool { return c.CertPath != "" || c.KeyPath != "" || c.CAPath != "" }

// Load builds the Source that cfg describes: PEM contents when set (they win
// over paths), else the watched files. The returned close function stops a
// file watcher; it is never nil.
func Load(cfg Config, opts Options) (Source, func() error, error) {
	noop := func() error { return nil }
	switch {
	case cfg.HasPEM():
		if cfg.CertPEM == "" || cfg.KeyPEM == "" || cfg.CAPEM == "" {
			return nil, noop, fmt.Errorf("certload: MTLS_CERT, MTLS_KEY and MTLS_CA_CERT must be set together")
		}
		s, err := FromPEM([]byte(cfg.CertPEM), []byte(cfg.KeyPEM), []byte(cfg.CAPEM),
			Origin{Cert: "MTLS_CERT", Key: "MTLS_KEY", CA: "MTLS_CA_CERT"}, opts)
		if err != nil {
			return nil, noop, err
		}
		return s, noop, nil
	case cfg.HasPaths():
		if cfg.CertPath == "" || cfg.KeyPath == "" || cfg.CAPath == "" {
			return nil, noop, fmt.Errorf("certload: MTLS_CERT_PATH, MTLS_KEY_PATH and MTLS_CA_CERT_PATH must be set together")
		}
		f, err := WatchFiles(cfg.CertPath, cfg.KeyPath, cfg.CAPath, opts)
		if err != nil {
			return nil, noop, err
		}
		return f, f.Close, nil
	default:
		return nil, noop, fmt.Errorf("certload: no certificate configured: set MTLS_CERT/MTLS_KEY/MTLS_CA_CERT or the MTLS_*_PATH variables")
	}
}
