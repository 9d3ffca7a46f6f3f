package binding

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// SetAfterLookup makes f run between a key's lookup and the read of its
// state (nil: nothing), to interleave a refresh there.
func SetAfterLookup(k *KeySet, f func()) { k.afterLookup = f }

// RefreshNow fetches the JWKS as a background refresh does.
func RefreshNow(ctx context.Context, k *KeySet) error { return k.shared(ctx, nil) }

// Parse is the uncached check of a token (Verifier.parse).
func (v *Verifier) Parse(ctx context.Context, raw string) (*Claims, error) {
	c, _, err := v.parse(ctx, raw)
	return c, err
}

// ParseWithJWTParser is the check as it was done before parse, with jwt's
// Parser (ParseWithClaims, the header checks in the keyfunc): the reference
// FuzzParseMatchesJWTParser holds parse to.
func (v *Verifier) ParseWithJWTParser(ctx context.Context, raw string) (*Claims, error) {
	parser := jwt.NewParser(
		jwt.WithValidMethods(AllowedAlgorithms()),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(v.cfg.Now),
	)
	// Decoded by encoding/json alone, as before; RegisteredClaims' methods
	// make it a jwt.Claims.
	claims := new(plainClaims)
	keyfunc := v.cfg.Keys.keyfunc(ctx, nil)
	tok, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		h := headerOf(t.Header)
		if err := h.check(); err != nil {
			return nil, err
		}
		return keyfunc(t)
	})
	if err != nil {
		if tok != nil && (errors.Is(err, jwt.ErrTokenSignatureInvalid) || errors.Is(err, jwt.ErrTokenUnverifiable)) {
			alg, ok := tok.Header["alg"].(string)
			switch {
			case !ok:
				return nil, fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrMalformedToken, err)
			case !slices.Contains(allowedAlgorithms, alg):
				return nil, fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrAlgNotAllowed, err)
			}
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return (*Claims)(claims), nil
}

// CacheStats reports the verified-token cache's entries and accounted
// bytes.
func (v *Verifier) CacheStats() (entries, bytes int) { return v.cache.stats() }

// EntryCost is what the cache accounts for a token of n bytes.
func EntryCost(n int) int { return entryCost(n) }
