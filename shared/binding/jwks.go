package binding

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// KeySetOptions tune a KeySet. Zero values take the defaults described in
// docs/contract.md, Authentication.
type KeySetOptions struct {
	// Client fetches the JWKS. It must verify the identity provider against
	// the project CA (tokensource.ProviderClient builds one); nil is refused.
	Client *http.Client
	// UnknownKIDInterval is the least time between two refreshes triggered
	// by an unknown kid (default one minute). The start-up fetch does not count.
	UnknownKIDInterval time.Duration
	// RefreshInterval is how often keys are refreshed in the background
	// (default DefaultRefreshInterval; JWKS_REFRESH_INTERVAL). It bounds how
	// long a key the identity provider withdrew keeps verifying tokens.
	RefreshInterval time.Duration
	// Logger receives refresh failures; nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
	// OnRefresh, when set, is called after every fetch of the JWKS (at
	// start-up, in the background, for an unknown kid) with its error, nil
	// on success (metrics). It must not block.
	OnRefresh func(err error)
}

// maxJWKSBytes bounds what a JWKS endpoint may send.
const maxJWKSBytes = 1 << 20

// DefaultRefreshInterval is the default of KeySetOptions.RefreshInterval.
const DefaultRefreshInterval = 10 * time.Minute

// maxWithdrawn bounds how many withdrawn kids a KeySet remembers.
const maxWithdrawn = 64

// KeySet caches the signing keys of the identity provider.
//
// Its refresh policy differs from keyfunc's defaults on purpose: a token
// whose kid is not cached triggers at most one refresh per UnknownKIDInterval;
// concurrent requests with an unknown kid share the refresh in flight and its
// result; a request that can trigger no refresh is refused at once, never held
// waiting; a failed refresh keeps the cached keys.
//
// A key that a refresh no longer finds (or finds under its kid with other
// key material) is withdrawn: its keyState is marked, which invalidates at
// once every verification the Verifier cached with it, and a token naming
// its kid is refused at once, without a refresh of its own, until a
// refresh publishes the kid again.
type KeySet struct {
	url    string
	client *http.Client
	opts   KeySetOptions
	log    *slog.Logger

	store *jwkset.MemoryJWKSet
	kf    keyfunc.Keyfunc
	// live maps each published kid to its state; replaced, never mutated,
	// by each successful refresh, so requests read it without a lock.
	live atomic.Pointer[map[string]*keyState]

	mu          sync.Mutex
	inflight    *refreshCall // refresh in flight, joined by concurrent callers
	lastUnknown time.Time    // last refresh triggered by an unknown kid
	lastOK      time.Time
	lastErr     error
	keys        int
	withdrawn   map[string]time.Time // kids a refresh dropped, when

	stop chan struct{}
	done chan struct{}
	once sync.Once

	// afterLookup, when set (tests), runs between a key's lookup and the
	// read of its state.
	afterLookup func()
}

type refreshCall struct {
	done chan struct{}
	err  error
}

// keyState is one published signing key as this process holds it.
// Verified tokens are cached with the keyState of the key that verified
// them; a cache hit is good only while the key is not withdrawn, which
// costs one atomic load.
type keyState struct {
	pub       any // the public key, to notice a kid that now names another key
	withdrawn atomic.Bool
}

// current reports whether the key is still published.
func (s *keyState) current() bool { return s != nil && !s.withdrawn.Load() }

// NewKeySet fetches the JWKS at url once and starts refreshing it in the
// background until Close. A failed first fetch is logged and reported by
// Status, not returned: the agent starts and serves /health while the
// identity provider is down. Only an unusable configuration is an error.
func NewKeySet(ctx context.Context, url string, opts KeySetOptions) (*KeySet, error) {
	if !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("binding: JWKS URL must be https: %q", url)
	}
	if opts.Client == nil {
		return nil, errors.New("binding: KeySet needs an HTTP client that verifies the identity provider")
	}
	if opts.UnknownKIDInterval <= 0 {
		opts.UnknownKIDInterval = time.Minute
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	store := jwkset.NewMemoryStorage()
	kf, err := keyfunc.New(keyfunc.Options{Storage: store, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return nil, fmt.Errorf("binding: %w", err)
	}
	k := &KeySet{url: url, client: opts.Client, opts: opts, log: log, store: store, kf: kf,
		withdrawn: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	k.live.Store(&map[string]*keyState{})
	if err := k.refresh(ctx); err != nil {
		log.Error("JWKS fetch at start-up failed; tokens are refused until keys are loaded", "jwks_url", url, "error", err)
	}
	go k.background()
	return k, nil
}

// Close stops the background refresh.
func (k *KeySet) Close() {
	k.once.Do(func() { close(k.stop) })
	<-k.done
}

// KeySetStatus describes the cache for health checks.
type KeySetStatus struct {
	Keys        int
	LastSuccess time.Time
	LastError   error
}

// Status reports how many keys are cached and how the last refresh went.
func (k *KeySet) Status() KeySetStatus {
	k.mu.Lock()
	defer k.mu.Unlock()
	return KeySetStatus{Keys: k.keys, LastSuccess: k.lastOK, LastError: k.lastErr}
}

func (k *KeySet) background() {
	defer close(k.done)
	t := time.NewTicker(k.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := k.shared(ctx, nil); err != nil {
				k.log.Error("JWKS refresh failed; keeping cached keys", "jwks_url", k.url, "error", err)
			}
			cancel()
		}
	}
}

// Keyfunc resolves the verification key of token. It refuses tokens without
// kid and, for an unknown kid, refreshes at most as the policy allows; a
// kid that a refresh withdrew is refused at once.
func (k *KeySet) Keyfunc(ctx context.Context) jwt.Keyfunc {
	return k.keyfunc(ctx, nil)
}

// keyfunc is Keyfunc that also reports, in *state, the keyState of the key
// it returned (nil when the key was withdrawn or replaced meanwhile).
func (k *KeySet) keyfunc(ctx context.Context, state **keyState) jwt.Keyfunc {
	lookup := k.kf.KeyfuncCtx(ctx)
	return func(token *jwt.Token) (any, error) {
		kid, _ := token.Header["kid"].(string)
		key, err := lookup(token)
		if errors.Is(err, jwkset.ErrKeyNotFound) {
			if k.isWithdrawn(kid) {
				return nil, fmt.Errorf("%w: the identity provider withdrew it", ErrUnknownKey)
			}
			if rerr := k.refreshForUnknownKID(ctx); rerr != nil {
				return nil, fmt.Errorf("%w: %v", ErrUnknownKey, rerr)
			}
			key, err = lookup(token)
		}
		if errors.Is(err, jwkset.ErrKeyNotFound) {
			return nil, ErrUnknownKey
		}
		if errors.Is(err, keyfunc.ErrKeyfunc) {
			// With the kid checked (header.check) and only signing keys
			// stored (parseJWKS), what keyfunc still refuses is a JWK
			// published for another algorithm than the token's.
			return nil, fmt.Errorf("%w: %w", ErrAlgNotAllowed, err)
		}
		if err != nil {
			return nil, err
		}
		if err := fitsKey(token, key); err != nil {
			return nil, err
		}
		if k.afterLookup != nil {
			k.afterLookup()
		}
		if state != nil {
			// The state of the key that verifies, only: a refresh since
			// the lookup may have put another key under kid, and a token
			// of the withdrawn key must not be cached under its state.
			*state = nil
			if s := (*k.live.Load())[kid]; s != nil && samePublicKey(s.pub, key) {
				*state = s
			}
		}
		return key, nil
	}
}

// fitsKey refuses an algorithm that does not fit the key's type (an ES256
// token naming an RSA key: algorithm confusion) and RSA keys under 2048
// bits. jwt would refuse the first too, but as a bad signature.
func fitsKey(token *jwt.Token, key any) error {
	alg := ""
	if token.Method != nil {
		alg = token.Method.Alg()
	}
	var fits bool
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA signing key shorter than 2048 bits", ErrAlgNotAllowed)
		}
		fits = alg == "RS256" || alg == "PS256"
	case *ecdsa.PublicKey:
		fits = alg == "ES256" && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		fits = alg == "EdDSA"
	}
	if !fits {
		return fmt.Errorf("%w: %s does not fit the key %T", ErrAlgNotAllowed, alg, key)
	}
	return nil
}

// isWithdrawn reports whether a refresh dropped kid and none published it
// again since.
func (k *KeySet) isWithdrawn(kid string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.withdrawn[kid]
	return ok
}

var errRefreshLimited = errors.New("refresh for an unknown kid already done in the last interval")

// refreshForUnknownKID joins the refresh in flight, or starts one when the
// rate limit allows, or refuses at once. The check and the start happen
// under one lock, so no refresh escapes the limit.
func (k *KeySet) refreshForUnknownKID(ctx context.Context) error {
	return k.shared(ctx, func() bool {
		now := k.opts.Now()
		if !k.lastUnknown.IsZero() && now.Sub(k.lastUnknown) < k.opts.UnknownKIDInterval {
			return false
		}
		k.lastUnknown = now
		return true
	})
}

// shared joins the refresh in flight and returns its result, or starts one
// when mayStart (called with k.mu held; nil means always) allows it.
func (k *KeySet) shared(ctx context.Context, mayStart func() bool) error {
	k.mu.Lock()
	c := k.inflight
	if c == nil {
		if mayStart != nil && !mayStart() {
			k.mu.Unlock()
			return errRefreshLimited
		}
		c = &refreshCall{done: make(chan struct{})}
		k.inflight = c
		k.mu.Unlock()
		// The fetch is not tied to the first caller's context: the callers
		// that join it must not fail because the first one went away.
		fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		c.err = k.refresh(fetchCtx)
		cancel()
		k.mu.Lock()
		k.inflight = nil
		k.mu.Unlock()
		close(c.done)
	} else {
		k.mu.Unlock()
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refresh fetches the JWKS and replaces the cached keys; on any failure the
// cached keys stay.
func (k *KeySet) refresh(ctx context.Context) error {
	err := k.replace(ctx)
	if k.opts.OnRefresh != nil {
		k.opts.OnRefresh(err)
	}
	return err
}

func (k *KeySet) replace(ctx context.Context) error {
	keys, err := k.fetch(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.lastErr = err
		return err
	}
	if err := k.store.KeyReplaceAll(ctx, keys); err != nil {
		k.lastErr = err
		return err
	}
	k.publish(keys)
	k.keys, k.lastOK, k.lastErr = len(keys), k.opts.Now(), nil
	return nil
}

// publish makes keys the published set (k.mu held): a kid that stays with
// the same key keeps its state, and so its cached verifications; a kid
// that is gone, or names another key now, is withdrawn.
func (k *KeySet) publish(keys []jwkset.JWK) {
	old := *k.live.Load()
	next := make(map[string]*keyState, len(keys))
	for _, jwk := range keys {
		kid, pub := jwk.Marshal().KID, jwk.Key()
		if s, ok := old[kid]; ok && samePublicKey(s.pub, pub) {
			next[kid] = s
		} else {
			next[kid] = &keyState{pub: pub}
		}
		delete(k.withdrawn, kid)
	}
	k.live.Store(&next)
	now := k.opts.Now()
	for kid, s := range old {
		if next[kid] == s {
			continue
		}
		s.withdrawn.Store(true)
		if _, still := next[kid]; still {
			continue // another key under the same kid: tokens are checked against it
		}
		k.withdrawn[kid] = now
		k.log.Info("signing key withdrawn by the identity provider; tokens it signed are refused from now on", "kid", kid)
	}
	for len(k.withdrawn) > maxWithdrawn {
		var oldest string
		for kid, at := range k.withdrawn {
			if oldest == "" || at.Before(k.withdrawn[oldest]) {
				oldest = kid
			}
		}
		delete(k.withdrawn, oldest)
	}
}

func samePublicKey(a, b any) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func (k *KeySet) fetch(ctx context.Context) ([]jwkset.JWK, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("binding: JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("binding: JWKS fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("binding: JWKS fetch: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("binding: JWKS read: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, errors.New("binding: JWKS larger than 1 MiB")
	}
	return parseJWKS(body)
}

// parseJWKS keeps the usable public signing keys of a JWKS document. A key
// that does not parse is skipped (an identity provider may publish key types
// we do not use); a document without any usable key is an error.
func parseJWKS(body []byte) ([]jwkset.JWK, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("binding: JWKS is not valid JSON: %w", err)
	}
	var keys []jwkset.JWK
	for _, m := range set.Keys {
		if m.KID == "" || (m.USE != "" && m.USE != jwkset.UseSig) {
			continue
		}
		// Only the public part: a JWKS that leaks private members does not
		// make us hold them.
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: false}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue
		}
		keys = append(keys, jwk)
	}
	if len(keys) == 0 {
		return nil, errors.New("binding: JWKS holds no usable signing key")
	}
	return keys, nil
}
