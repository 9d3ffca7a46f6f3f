package binding

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
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
	// CacheSize bounds the cache of verified tokens (default 10000; a
	// negative value disables the cache).
	CacheSize int
	// Logger receives authentication failures (never the token); nil means
	// slog.Default().
	Logger *slog.Logger
	// Now returns the current time (tests); nil means time.Now.
	Now func() time.Time
}

// Verifier checks bearer tokens and their binding to a certificate.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	cache  *lru.Cache[[sha256.Size]byte, verified]
	log    *slog.Logger
}

// verified is a cached verification: the claims, and the state of the key
// that verified the signature. It is good while that key is published.
type verified struct {
	claims *Claims
	key    *keyState
}

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
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(AllowedAlgorithms()),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)
	if cfg.CacheSize >= 0 {
		size := cfg.CacheSize
		if size == 0 {
			size = 10000
		}
		c, err := lru.New[[sha256.Size]byte, verified](size)
		if err != nil {
			return nil, fmt.Errorf("binding: %w", err)
		}
		v.cache = c
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
	if raw == "" {
		return nil, ErrNoToken
	}
	claims, err := v.claims(ctx, raw)
	if err != nil {
		return nil, err
	}
	if claims.Confirmation == nil || claims.Confirmation.X5tS256 == "" {
		if v.cfg.BindingRequired {
			return nil, ErrNoConfirmation
		}
		return claims, nil
	}
	if v.cfg.BindingEnabled {
		if leaf == nil {
			return nil, ErrNoClientCert
		}
		if !claims.Confirmation.Bound(leaf) {
			return nil, ErrThumbprintMismatch
		}
	}
	return claims, nil
}

func (v *Verifier) claims(ctx context.Context, raw string) (*Claims, error) {
	key := sha256.Sum256([]byte(raw))
	now := v.cfg.Now()
	if v.cache != nil {
		if c, ok := v.cache.Get(key); ok {
			switch {
			case !c.key.current():
				// The key was withdrawn: verify again, which refuses
				// the token (unknown kid) unless the key came back.
				v.cache.Remove(key)
			case now.Before(c.claims.ExpiresAt.Time):
				return c.claims, nil
			default:
				v.cache.Remove(key)
				return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenExpired)
			}
		}
	}
	claims := new(Claims)
	var state *keyState
	keyfunc := v.cfg.Keys.keyfunc(ctx, &state)
	tok, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if err := checkHeader(t.Header); err != nil {
			return nil, err
		}
		return keyfunc(t)
	})
	if err != nil {
		return nil, classify(tok, err)
	}
	// jwt's leeway also stretches exp; the design grants it only to nbf and iat.
	if !now.Before(claims.ExpiresAt.Time) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenExpired)
	}
	// A key withdrawn between its lookup and here verified this request,
	// but nothing is cached with it.
	if v.cache != nil && state.current() {
		v.cache.Add(key, verified{claims: claims, key: state})
	}
	return claims, nil
}

// classify wraps a parse failure in ErrInvalidToken, telling apart what
// jwt reports under one error: an algorithm outside the allow-list comes
// back as ErrTokenSignatureInvalid (a known algorithm) or
// ErrTokenUnverifiable (one jwt does not know), as a bad signature or a
// failed key lookup would.
func classify(tok *jwt.Token, err error) error {
	if tok != nil && (errors.Is(err, jwt.ErrTokenSignatureInvalid) || errors.Is(err, jwt.ErrTokenUnverifiable)) {
		alg, ok := tok.Header["alg"].(string)
		switch {
		case !ok:
			return fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrMalformedToken, err)
		case !slices.Contains(allowedAlgorithms, alg):
			return fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrAlgNotAllowed, err)
		}
	}
	return fmt.Errorf("%w: %w", ErrInvalidToken, err)
}

// checkHeader refuses the header tricks (docs/contract.md, Authentication) before any key
// is looked up, so that they can never trigger a JWKS refresh.
func checkHeader(h map[string]any) error {
	for _, name := range []string{"jku", "x5u", "jwk", "x5c"} {
		if _, ok := h[name]; ok {
			return fmt.Errorf("%w: header parameter %q is not accepted", ErrHeaderRefused, name)
		}
	}
	if _, ok := h["crit"]; ok {
		// No extension is understood, so any crit is unknown (RFC 7515 4.1.11).
		return fmt.Errorf("%w: critical header parameters are not supported", ErrHeaderRefused)
	}
	// Without a kid the token would have to be tried against every key:
	// refused with the header checks (docs/contract.md, Authentication, step 3).
	kid, ok := h["kid"].(string)
	if !ok || kid == "" {
		return fmt.Errorf("%w: token has no kid", ErrHeaderRefused)
	}
	return nil
}
