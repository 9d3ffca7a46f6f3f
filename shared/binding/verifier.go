package binding

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// allowedAlgorithms are the only JWS algorithms a token may use. Symmetric
// algorithms are absent on purpose: an HS256 token "signed" with the
// identity provider's public key must never verify. Unexported so that no
// caller can widen it.
var allowedAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// AllowedAlgorithms returns the JWS algorithms a token may use (a copy:
// changing it changes nothing).
func AllowedAlgorithms() []string { return slices.Clone(allowedAlgorithms) }

// Leeway is how far in the future nbf and iat may be (clock skew). It is not
// granted to exp.
const Leeway = 60 * time.Second

// Claims are the claims of an access token this package reads.
type Claims struct {
	jwt.RegisteredClaims
	Confirmation    *Cnf   `json:"cnf,omitempty"`
	AuthorizedParty string `json:"azp,omitempty"`
	ClientID        string `json:"client_id,omitempty"`
	Scope           string `json:"scope,omitempty"`
}

// Config configures a Verifier.
type Config struct {
	// Issuer is the exact iss every token must carry.
	Issuer string
	// Audience must be one of the token's aud values.
	Audience string
	// Keys resolves signing keys.
	Keys *KeySet
	// BindingEnabled checks cnf.x5t#S256 against the presented certificate
	// (TOKEN_BINDING_ENABLED).
	BindingEnabled bool
	// BindingRequired refuses tokens without cnf (TOKEN_BINDING_REQUIRED).
	BindingRequired bool
	// CacheSize bounds the cache of verified tokens in entries (default
	// DefaultCacheSize; a negative value disables the cache).
	CacheSize int
	// CacheBytes bounds it in bytes (default DefaultCacheBytes): each entry
	// is accounted at twice its token's length plus 512 bytes, more than it
	// holds, so that many tokens of the maximum header size cannot grow the
	// cache past this bound.
	CacheBytes int
	// Logger receives authentication failures (never the token); nil means
	// slog.Default().
	Logger *slog.Logger
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
}

// Verifier checks bearer tokens and their binding to a certificate.
type Verifier struct {
	cfg Config
	// validator checks the claims (jwt's, with the options of the design).
	validator *jwt.Validator
	cache     *tokenCache // nil: every token is verified on every request
	log       *slog.Logger
}

// verified is a verification: the claims, and the state of the key that
// verified the signature. A cached one is good while that key is
// published and until exp.
type verified struct {
	claims *Claims
	key    *keyState
	exp    time.Time
	// cnf is the token's cnf.x5t#S256, nil when it has none.
	cnf []byte
	// cost is what the cache accounts for it (entryCost).
	cost int
}

// usable reports whether e may still answer for its token at now.
func (e *verified) usable(now time.Time) bool { return e.key.current() && now.Before(e.exp) }

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("binding: issuer and audience are required")
	}
	if cfg.Keys == nil {
		return nil, errors.New("binding: a KeySet is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg, log: cfg.Logger}
	if v.log == nil {
		v.log = slog.Default()
	}
	v.validator = jwt.NewValidator(
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)
	if cfg.CacheSize >= 0 {
		size, bytes := cfg.CacheSize, cfg.CacheBytes
		if size == 0 {
			size = DefaultCacheSize
		}
		if bytes <= 0 {
			bytes = DefaultCacheBytes
		}
		v.cache = newTokenCache(size, bytes)
	}
	return v, nil
}

// Verify checks raw and its binding to leaf, the certificate presented on
// the connection the token arrived on. It returns the verified claims.
//
// The signature and claims of a token are verified once; a later request
// with the same token reuses the verified claims until exp, or until a JWKS
// refresh withdraws the key that signed it, whichever comes first. The
// binding is checked on every call, against that call's certificate.
func (v *Verifier) Verify(ctx context.Context, raw string, leaf *x509.Certificate) (*Claims, error) {
	return v.verify(ctx, raw, leaf, nil)
}

// verify is Verify with, when facts is not nil, the facts of leaf already
// at hand.
func (v *Verifier) verify(ctx context.Context, raw string, leaf *x509.Certificate, facts *peerFacts) (*Claims, error) {
	if raw == "" {
		return nil, ErrNoToken
	}
	e, err := v.verification(ctx, raw)
	if err != nil {
		return nil, err
	}
	if e.cnf == nil {
		if v.cfg.BindingRequired {
			return nil, ErrNoConfirmation
		}
		return e.claims, nil
	}
	if v.cfg.BindingEnabled {
		if leaf == nil {
			return nil, ErrNoClientCert
		}
		// The thumbprint of this request's certificate, in constant time.
		var thumb [thumbprintLen]byte
		if facts != nil {
			thumb = facts.thumb
		} else {
			thumbprint(&thumb, leaf)
		}
		if subtle.ConstantTimeCompare(e.cnf, thumb[:]) != 1 {
			return nil, ErrThumbprintMismatch
		}
	}
	return e.claims, nil
}

// verification returns raw's verification: from the cache while it is
// usable, else by checking the signature and the claims.
func (v *Verifier) verification(ctx context.Context, raw string) (*verified, error) {
	now := v.cfg.Now()
	if v.cache != nil {
		if e := v.cache.get(raw); e != nil {
			switch {
			case !e.key.current():
				// The key was withdrawn: verify again, which refuses
				// the token (unknown kid) unless the key came back.
				v.cache.remove(raw, e)
			case now.Before(e.exp):
				return e, nil
			default:
				v.cache.remove(raw, e)
				return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenExpired)
			}
		}
	}
	claims, state, err := v.parse(ctx, raw)
	if err != nil {
		return nil, err
	}
	// jwt's leeway also stretches exp; the design grants it only to nbf and iat.
	if !now.Before(claims.ExpiresAt.Time) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenExpired)
	}
	e := &verified{claims: claims, key: state, exp: claims.ExpiresAt.Time}
	if c := claims.Confirmation; c != nil && c.X5tS256 != "" {
		e.cnf = []byte(c.X5tS256)
	}
	// A key withdrawn between its lookup and here verified this request,
	// but nothing is cached with it. The key is a copy of the token: the
	// request's string may share memory with the rest of its headers.
	if v.cache != nil && state.current() {
		v.cache.put(strings.Clone(raw), e, now)
	}
	return e, nil
}

// Config returns the configuration v was built with (its defaults
// applied): the bench build's hand-written check reuses its keys, issuer
// and audience.
func (v *Verifier) Config() Config { return v.cfg }
