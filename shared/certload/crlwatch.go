package certload

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/envconfig"
)

// CRLConfig says where the revocation list comes from; it mirrors
// MTLS_CRL_PATH, MTLS_CRL and MTLS_CRL_SECRET_ID, of which at most one may
// be set. None set: no CRL, nothing is revoked.
type CRLConfig struct {
	Path string // MTLS_CRL_PATH: a PEM file of "X509 CRL" blocks, re-read when it changes
	PEM  string // MTLS_CRL: the same contents, fixed for the life of the process
	// SecretID is MTLS_CRL_SECRET_ID: a Secrets Manager secret whose string
	// holds the same contents, fetched at start and again every Refresh.
	SecretID string
	// Refresh is MTLS_CRL_REFRESH, how often SecretID is fetched again
	// (0: DefaultCRLRefresh). It bounds how long a revocation published to
	// the secret takes to apply.
	Refresh time.Duration
	// SecretsManager reads SecretID; nil means a client built from the
	// default AWS configuration (AWS_REGION, AWS_ENDPOINT_URL, the task
	// role's credentials).
	SecretsManager GetSecretValueAPI
}

// MTLS_CRL_REFRESH: the default, and the bounds the environment may set.
// At most a minute, so that a revocation applies within the minute that
// docs/operations.md promises (plus one fetch); at least a few seconds,
// since every agent task asks Secrets Manager at that rate.
const (
	DefaultCRLRefresh = 30 * time.Second
	MinCRLRefresh     = 5 * time.Second
	MaxCRLRefresh     = time.Minute
)

// crlFetchTimeout bounds one read of the CRL secret, the SDK's retries
// included, so that a Secrets Manager that does not answer never holds the
// watcher (or the agent's start-up) for long.
const crlFetchTimeout = 10 * time.Second

// CRLConfigFromEnv reads MTLS_CRL_PATH, MTLS_CRL, MTLS_CRL_SECRET_ID and
// MTLS_CRL_REFRESH, and reports through env when more than one source is
// set, or a refresh interval without a secret to refresh.
func CRLConfigFromEnv(env *envconfig.Reader) CRLConfig {
	c := CRLConfig{Path: env.String("MTLS_CRL_PATH", ""), PEM: env.Raw("MTLS_CRL"), SecretID: env.String("MTLS_CRL_SECRET_ID", "")}
	if err := c.check(); err != nil {
		env.Failf("%s", err)
	}
	if env.Raw("MTLS_CRL_REFRESH") != "" {
		c.Refresh = env.Duration("MTLS_CRL_REFRESH", DefaultCRLRefresh, MinCRLRefresh, MaxCRLRefresh)
		if c.SecretID == "" {
			env.Failf("MTLS_CRL_REFRESH is set without MTLS_CRL_SECRET_ID: it only says how often that secret is fetched again")
		}
	}
	return c
}

// Configured reports whether a CRL is configured at all.
func (c CRLConfig) Configured() bool { return c.Path != "" || c.PEM != "" || c.SecretID != "" }

// Variable names the variable that configures the CRL ("" when none).
func (c CRLConfig) Variable() string {
	switch {
	case c.SecretID != "":
		return "MTLS_CRL_SECRET_ID"
	case c.PEM != "":
		return "MTLS_CRL"
	case c.Path != "":
		return "MTLS_CRL_PATH"
	}
	return ""
}

// check refuses two sources at once: which one is in force would be a
// guess, and a forgotten variable could pin an old list.
func (c CRLConfig) check() error {
	n := 0
	for _, set := range []bool{c.Path != "", c.PEM != "", c.SecretID != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("set only one of MTLS_CRL_PATH, MTLS_CRL and MTLS_CRL_SECRET_ID: the CRL comes from one place")
	}
	return nil
}

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
// (MTLS_CRL_PATH) is read at every poll, like the certificate files, the
// secret (MTLS_CRL_SECRET_ID) is fetched every Refresh, and the list is
// checked again whenever the Source's CA bundle changes (seen at the same
// pace), so a list of a CA that arrives in the bundle later (a rotation)
// is picked up then. Every list, whatever its origin, goes through
// ParseCRLs. A list that does not verify (not signed by a trusted CA,
// malformed, empty) is logged and refused, and so is a read that fails (a
// missing file, Secrets Manager unreachable or refusing): the previous list
// stays in force, so a truncated, forged or unreadable list never
// un-revokes anything. A list past its nextUpdate is logged as stale and
// still applied: it is the newest revocation information there is.
//
// A nil *CRLWatcher is a valid CRLSource that revokes nothing (no CRL
// configured).
type CRLWatcher struct {
	origin string
	// read returns the list's current contents; nil for MTLS_CRL, whose
	// contents never change.
	read func(context.Context) ([]byte, error)
	src  Source
	opts Options

	current atomic.Pointer[Revocations]

	mu     sync.Mutex          // serialises reloads; guards what follows
	raw    []byte              // the contents last read
	cas    []*x509.Certificate // the CAs raw was last checked against
	warned *Revocations        // the list last reported stale

	cancel context.CancelFunc // stops watch and a read in flight
	done   chan struct{}
	once   sync.Once
	polls  atomic.Int64 // polls completed (tests)
}

// LoadCRL loads the CRL cfg names, verified against the CAs of src, and
// keeps it current until Close (see CRLWatcher). It returns nil and no
// error when no CRL is configured. A first load that fails is an error:
// the agent must not start with a revocation list it cannot apply. ctx
// bounds the first load only.
func LoadCRL(ctx context.Context, cfg CRLConfig, src Source, opts Options) (*CRLWatcher, error) {
	if !cfg.Configured() {
		return nil, nil
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("certload: %w", err)
	}
	if src == nil {
		return nil, errors.New("certload: a CRL needs the certificate source whose CAs sign it")
	}
	w := &CRLWatcher{src: src, opts: opts, done: make(chan struct{})}
	interval := opts.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	switch {
	case cfg.SecretID != "":
		api := cfg.SecretsManager
		if api == nil {
			var err error
			if api, err = defaultSecretsManager(ctx); err != nil {
				return nil, err
			}
		}
		id := cfg.SecretID
		w.origin = "secret " + id
		w.read = func(ctx context.Context) ([]byte, error) {
			ctx, cancel := context.WithTimeout(ctx, crlFetchTimeout)
			defer cancel()
			return FetchSecretString(ctx, api, id)
		}
		interval = cfg.Refresh
		if interval <= 0 {
			interval = DefaultCRLRefresh
		}
	case cfg.PEM != "":
		w.origin, w.raw = "MTLS_CRL", []byte(cfg.PEM)
	default:
		path := cfg.Path
		w.origin = path
		// Read at every poll and compared, not judged by size and
		// modification time: two lists of one size written within one
		// tick of the file system's clock must not look alike. A CRL is
		// small (and bounded by MaxCRLBytes).
		w.read = func(context.Context) ([]byte, error) { return readBounded(path, MaxCRLBytes) }
	}
	if _, err := w.reload(ctx); err != nil {
		return nil, err
	}
	w.logLoaded()
	w.warnIfStale()
	wctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.watch(wctx, interval)
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

// Close stops watching, and a read in flight. It is safe to call more than
// once, and on nil.
func (w *CRLWatcher) Close() error {
	if w == nil {
		return nil
	}
	w.once.Do(w.cancel)
	<-w.done
	return nil
}

func (w *CRLWatcher) watch(ctx context.Context, interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err := w.reload(ctx)
			var rerr *readError
			switch {
			case err != nil && ctx.Err() != nil:
				return // closed while reading
			case errors.As(err, &rerr):
				w.opts.logger().Error("CRL could not be read; the previous CRL stays in force", "crl", w.origin, "error", err)
			case err != nil:
				w.opts.logger().Error("CRL refused; the previous CRL stays in force", "crl", w.origin, "error", err)
			case changed:
				w.logLoaded()
			}
			w.warnIfStale()
			w.polls.Add(1)
		}
	}
}

// readError is a failure to read the list (a missing file, a secret
// Secrets Manager would not give), as opposed to a list that was read and
// refused.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// Reload reads the list again (the file or the secret) and checks it again
// if it or the CA bundle changed. It reports whether a new list was put in
// force. On error the list in force is kept; the same contents are not
// tried again until they or the CAs change, so one bad list is reported
// once.
func (w *CRLWatcher) Reload() (bool, error) { return w.reload(context.Background()) }

func (w *CRLWatcher) reload(ctx context.Context) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fresh := w.current.Load() == nil
	rawChanged := false
	if w.read != nil {
		data, err := w.read(ctx)
		if err != nil {
			if errors.Is(err, ErrMalformedCRL) {
				return false, fmt.Errorf("certload: CRL %s: %w", w.origin, err) // read, and too large
			}
			return false, &readError{fmt.Errorf("certload: CRL %s: %w", w.origin, err)}
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
	revs, kept, older := keepCurrent(revs, w.current.Load(), cas)
	for _, c := range kept {
		w.opts.logger().Warn("CRL leaves out the list of a trusted CA; its previous list stays in force",
			"crl", w.origin, "ca", c.Issuer.Subject.String(), "revoked", c.Len())
	}
	for _, c := range older {
		w.opts.logger().Error("CRL holds an older list of a CA than the one in force; the newer list stays in force",
			"crl", w.origin, "ca", c.Issuer.Subject.String(), "number_in_force", c.List.Number, "revoked", c.Len())
	}
	w.current.Store(revs)
	return true, nil
}

// keepCurrent returns next, amended so that a new list never un-revokes:
//
//   - a list of prev that next replaces with an older one (a lower CRL
//     number, or without numbers an earlier thisUpdate: a stale copy
//     published again, an earlier secret version restored) stays in force,
//     and is returned in older;
//   - a list of prev whose CA is still one of cas and which next leaves
//     out stays in force, and is returned in kept. A CA stops having a
//     list only by leaving the bundle (certgen retire-ca). It matters when
//     a new list and a new bundle arrive apart: in AWS the agents fetch
//     ca-a2a/crl while their bundle changes only at a redeploy, so during
//     certgen retire-ca's rollout a running agent sees the next CA's list
//     alone while it still trusts the old CA.
func keepCurrent(next, prev *Revocations, cas []*x509.Certificate) (revs *Revocations, kept, older []*CRL) {
	var out []*CRL
	for _, c := range next.CRLs() {
		if p := prev.For(c.Issuer); p != nil && olderThan(c, p) {
			older = append(older, p)
			c = p
		}
		out = append(out, c)
	}
	for _, c := range prev.CRLs() {
		if next.For(c.Issuer) == nil && slices.ContainsFunc(cas, c.Issuer.Equal) {
			kept = append(kept, c)
			out = append(out, c)
		}
	}
	if len(kept) == 0 && len(older) == 0 {
		return next, nil, nil
	}
	return &Revocations{crls: out}, kept, older
}

// olderThan reports whether list a of a CA was issued before list b of the
// same CA: by CRL number when both carry one (certgen increments it), else
// by thisUpdate.
func olderThan(a, b *CRL) bool {
	if a.List.Number != nil && b.List.Number != nil {
		return a.List.Number.Cmp(b.List.Number) < 0
	}
	return a.List.ThisUpdate.Before(b.List.ThisUpdate)
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
// long: the leaf is inside its validity window, is signed by a CA that is
// still in b, and is not on the CRL of revs (nil: none). The rest of the
// chain is ignored: the peer sent it, nobody verified it, and certgen's CA
// (path length 0) issues leaves directly. It is meant for every request:
// the signature check is done once per leaf and bundle and remembered in
// the bundle, so a call costs a time comparison, a map lookup and the CRL
// lookup, and allocates nothing. It returns ErrExpired, ErrNotYetValid,
// ErrUntrusted or ErrRevoked, unwrapped.
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
	case !b.signedLeaf(leaf):
		return ErrUntrusted
	case revs.IsRevoked(leaf):
		return ErrRevoked
	}
	return nil
}

// signedLeaf reports whether one of b's CAs signed leaf, answering from
// b's memo when it can. The memo is copy-on-write so that the answer for a
// known leaf takes no lock; it is bounded (started afresh when full), so
// connections with ever new leaves cannot grow it.
func (b *Bundle) signedLeaf(leaf *x509.Certificate) bool {
	if b.signed == nil { // a Bundle not built by Parse: no memo
		return issuedWithin(leaf, b.CACerts)
	}
	if ok, known := b.signed.m.Load().leaves[string(leaf.Raw)]; known {
		return ok
	}
	ok := issuedWithin(leaf, b.CACerts)
	b.signed.remember(leaf.Raw, ok)
	return ok
}

// Bounds of a bundle's memo: far more than the peers of an agent during a
// rotation.
const (
	maxSignedMemo      = 256
	maxSignedMemoBytes = 1 << 20
)

// signedMemo maps a leaf's DER to whether the bundle's CAs signed it.
type signedMemo struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[memoSnapshot]
}

// memoSnapshot is one published state of a signedMemo; never changed.
type memoSnapshot struct {
	leaves map[string]bool
	bytes  int // of the keys
}

func newSignedMemo() *signedMemo {
	s := &signedMemo{}
	s.m.Store(&memoSnapshot{leaves: map[string]bool{}})
	return s
}

func (s *signedMemo) remember(raw []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	next := &memoSnapshot{leaves: make(map[string]bool, len(old.leaves)+1)}
	if len(old.leaves) < maxSignedMemo && old.bytes+len(raw) <= maxSignedMemoBytes {
		maps.Copy(next.leaves, old.leaves)
		next.bytes = old.bytes
	}
	next.leaves[string(raw)] = ok
	next.bytes += len(raw)
	s.m.Store(next)
}

// issuedWithin reports whether one of cas signed leaf. The leaf's issuer
// name and authority key id must match the CA's (cheap, and the CAs of a
// rotation share one name, so the key id tells them apart), and the
// signature must verify: a name or key id alone can be copied.
func issuedWithin(leaf *x509.Certificate, cas []*x509.Certificate) bool {
	for _, ca := range cas {
		if bytes.Equal(ca.RawSubject, leaf.RawIssuer) &&
			(len(leaf.AuthorityKeyId) == 0 || len(ca.SubjectKeyId) == 0 || bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId)) &&
			leaf.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}
