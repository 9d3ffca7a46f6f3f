package certload

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/envconfig"
)

// CRLConfig says where the revocation list comes from; it mirrors
// MTLS_CRL_PATH and MTLS_CRL. The contents win over the path, as the
// MTLS_* certificate variables do. Neither set: no CRL, nothing is revoked.
type CRLConfig struct {
	Path string // MTLS_CRL_PATH: a PEM file of "X509 CRL" blocks, re-read when it changes
	PEM  string // MTLS_CRL: the same contents (ECS injects them from the secret ca-a2a/crl)
}

// CRLConfigFromEnv reads MTLS_CRL_PATH and MTLS_CRL.
func CRLConfigFromEnv(env *envconfig.Reader) CRLConfig {
	return CRLConfig{Path: env.String("MTLS_CRL_PATH", ""), PEM: env.Raw("MTLS_CRL")}
}

// Configured reports whether a CRL is configured at all.
func (c CRLConfig) Configured() bool { return c.Path != "" || c.PEM != "" }

// CRLSource gives the revocations in force. A nil *Revocations revokes
// nothing. Callers ask at every handshake and request; a source publishes a
// new *Revocations only when the list or the CAs it was checked against
// changed, so comparing pointers tells a holder of connections when to
// drop them.
type CRLSource interface {
	Revocations() *Revocations
}

// CRLWatcher is the CRLSource of an agent. It parses the configured list
// against the CAs of a certificate Source and keeps it current: the file
// (MTLS_CRL_PATH) is checked at every poll, like the certificate files, and
// the list is checked again whenever the Source's CA bundle changes, so a
// list of a CA that arrives in the bundle later (a rotation) is picked up
// then. A list that does not verify (not signed by a trusted CA, malformed,
// empty) is logged and refused, and the previous one stays in force: a
// truncated or forged file never un-revokes anything. A list past its
// nextUpdate is logged as stale and still applied: it is the newest
// revocation information there is.
//
// A nil *CRLWatcher is a valid CRLSource that revokes nothing (no CRL
// configured).
type CRLWatcher struct {
	cfg    CRLConfig
	origin string
	src    Source
	opts   Options

	current atomic.Pointer[Revocations]

	mu     sync.Mutex          // serialises reloads; guards what follows
	raw    []byte              // the contents last read
	cas    []*x509.Certificate // the CAs raw was last checked against
	warned *Revocations        // the list last reported stale

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// LoadCRL loads the CRL cfg names, verified against the CAs of src, and
// keeps it current until Close (see CRLWatcher). It returns nil and no
// error when no CRL is configured. A first load that fails is an error:
// the agent must not start with a revocation list it cannot apply.
func LoadCRL(cfg CRLConfig, src Source, opts Options) (*CRLWatcher, error) {
	if !cfg.Configured() {
		return nil, nil
	}
	if src == nil {
		return nil, errors.New("certload: a CRL needs the certificate source whose CAs sign it")
	}
	w := &CRLWatcher{cfg: cfg, origin: cfg.Path, src: src, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.PEM != "" {
		w.origin, w.cfg.Path, w.raw = "MTLS_CRL", "", []byte(cfg.PEM)
	}
	if _, err := w.Reload(); err != nil {
		return nil, err
	}
	w.logLoaded()
	w.warnIfStale()
	interval := opts.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	go w.watch(interval)
	return w, nil
}

// DefaultPollInterval is how often file sources look for changes: the
// certificate files and the CRL file. It bounds how long a revocation
// written to MTLS_CRL_PATH takes to apply (well inside the 60 s of
// docs/operations.md).
const DefaultPollInterval = 5 * time.Second

// Revocations returns the list in force; nil (nothing revoked) for a nil
// watcher.
func (w *CRLWatcher) Revocations() *Revocations {
	if w == nil {
		return nil
	}
	return w.current.Load()
}

// Close stops watching. It is safe to call more than once, and on nil.
func (w *CRLWatcher) Close() error {
	if w == nil {
		return nil
	}
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return nil
}

func (w *CRLWatcher) watch(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			changed, err := w.Reload()
			switch {
			case err != nil:
				w.opts.logger().Error("CRL refused; the previous CRL stays in force", "crl", w.origin, "error", err)
			case changed:
				w.logLoaded()
			}
			w.warnIfStale()
		}
	}
}

// Reload re-reads the file if it changed and checks the list again if it
// or the CA bundle changed. It reports whether a new list was put in
// force. On error the list in force is kept; the same contents are not
// tried again until they or the CAs change, so one bad file is reported
// once.
func (w *CRLWatcher) Reload() (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fresh := w.current.Load() == nil
	rawChanged := false
	if w.cfg.Path != "" {
		// Read at every poll and compared, not judged by size and
		// modification time: two lists of one size written within one
		// tick of the file system's clock must not look alike. A CRL is
		// small (and bounded by MaxCRLBytes).
		data, err := readBounded(w.cfg.Path, MaxCRLBytes)
		if err != nil {
			return false, fmt.Errorf("certload: CRL %s: %w", w.cfg.Path, err)
		}
		rawChanged = !bytes.Equal(data, w.raw)
		w.raw = data
	}
	cas := w.src.Bundle().CACerts
	casChanged := !slices.EqualFunc(cas, w.cas, (*x509.Certificate).Equal)
	if !fresh && !rawChanged && !casChanged {
		return false, nil
	}
	w.cas = cas
	revs, err := ParseCRLs(w.raw, w.origin, cas)
	if err != nil {
		return false, err
	}
	w.current.Store(revs)
	return true, nil
}

func (w *CRLWatcher) logLoaded() {
	revs := w.current.Load()
	revoked := 0
	for _, c := range revs.CRLs() {
		revoked += c.Len()
	}
	attrs := []any{"crl", w.origin, "lists", len(revs.CRLs()), "revoked", revoked}
	if nu := revs.NextUpdate(); !nu.IsZero() {
		attrs = append(attrs, "next_update", nu.UTC().Format(time.RFC3339))
	}
	w.opts.logger().Info("CRL loaded", attrs...)
}

// warnIfStale logs, once per list, that the list in force is past its
// nextUpdate.
func (w *CRLWatcher) warnIfStale() {
	revs := w.current.Load()
	nu := revs.NextUpdate()
	if nu.IsZero() || !w.opts.now().After(nu) {
		return
	}
	w.mu.Lock()
	already := w.warned == revs
	w.warned = revs
	w.mu.Unlock()
	if !already {
		w.opts.logger().Warn("CRL is stale (past its nextUpdate); still applied: re-sign it with certgen crl and publish it",
			"crl", w.origin, "next_update", nu.UTC().Format(time.RFC3339))
	}
}

// readBounded reads at most limit bytes of path; a longer file is an error
// without reading the rest.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformedCRL, limit)
	}
	return data, nil
}

// CheckPeer says whether a peer certificate chain that passed the handshake
// may still be used at now, on a connection that may have been open for
// long: the leaf is inside its validity window, was issued by a CA that is
// still in b (or by an intermediate the peer presented), and is not on the
// CRL of revs (nil: none). It is meant for every request, so it costs a
// time comparison, a few byte comparisons and a map lookup, and allocates
// nothing. It returns ErrExpired, ErrNotYetValid, ErrUntrusted or
// ErrRevoked, unwrapped.
func CheckPeer(chain []*x509.Certificate, b *Bundle, revs *Revocations, now time.Time) error {
	if len(chain) == 0 {
		return nil
	}
	leaf := chain[0]
	switch {
	case now.After(leaf.NotAfter):
		return ErrExpired
	case now.Before(leaf.NotBefore):
		return ErrNotYetValid
	case !issuedWithin(leaf, chain[1:], b.CACerts):
		return ErrUntrusted
	case revs.IsRevoked(leaf):
		return ErrRevoked
	}
	return nil
}

// issuedWithin reports whether leaf names as its issuer one of cas, or one
// of the intermediates its chain came with (their own issuers are not
// followed: certgen's CA issues leaves only). It compares names and key
// identifiers, not signatures: the chain was verified at the handshake,
// and this only asks whether the CA that vouched for it is still trusted,
// for instance after certgen retire-ca.
func issuedWithin(leaf *x509.Certificate, intermediates, cas []*x509.Certificate) bool {
	for _, set := range [2][]*x509.Certificate{cas, intermediates} {
		for _, ca := range set {
			if bytes.Equal(ca.RawSubject, leaf.RawIssuer) &&
				(len(leaf.AuthorityKeyId) == 0 || len(ca.SubjectKeyId) == 0 || bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId)) {
				return true
			}
		}
	}
	return false
}
