package binding

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// parse checks a token the cache does not hold: its compact serialization,
// header, signature and claims. golang-jwt is the verifier of record: its
// SigningMethod checks the signature and its Validator the claims. What
// this function does itself is what jwt's Parser would do around them, in
// the same order and with the same errors (errors.Is finds the same jwt
// sentinels, so a refusal keeps its reason code), without the Parser's
// costs that are not verification: a header decoded into a map, a second
// JSON scan of the claims, a copy of the signing input. Those were a
// third of the time a first sight of an RS256 token added to its bare
// signature check (bench/README.md, rows 2a and 2c).
//
// The order is jwt's: segments, header, claims, algorithm, signature
// encoding, allow-list, header checks and key lookup, signature, claims
// validation. So a token malformed in several ways is refused for the same
// reason as before, and nothing reaches the key lookup (which may refresh
// the JWKS) that jwt would have refused earlier.
func (v *Verifier) parse(ctx context.Context, raw string) (*Claims, *keyState, error) {
	h64, rest, ok := strings.Cut(raw, ".")
	c64, s64, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.IndexByte(s64, '.') >= 0 {
		return nil, nil, malformed("token contains an invalid number of segments", nil)
	}
	hb, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return nil, nil, malformed("could not base64 decode header", err)
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return nil, nil, malformed("could not JSON decode header", err)
	}
	cb, err := base64.RawURLEncoding.DecodeString(c64)
	if err != nil {
		return nil, nil, malformed("could not base64 decode claim", err)
	}
	claims := new(Claims)
	if err := claims.UnmarshalJSON(cb); err != nil {
		return nil, nil, malformed("could not JSON decode claim", err)
	}
	if !h.algOK {
		return nil, nil, h.classify(fmt.Errorf("%w: signing method (alg) is unspecified", jwt.ErrTokenUnverifiable))
	}
	method := jwt.GetSigningMethod(h.alg)
	if method == nil {
		return nil, nil, h.classify(fmt.Errorf("%w: signing method (alg) is unavailable", jwt.ErrTokenUnverifiable))
	}
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, nil, malformed("could not base64 decode signature", err)
	}
	if !slices.Contains(allowedAlgorithms, h.alg) {
		return nil, nil, h.classify(fmt.Errorf("%w: signing method %v is invalid", jwt.ErrTokenSignatureInvalid, h.alg))
	}
	if err := h.check(); err != nil {
		return nil, nil, h.classify(fmt.Errorf("%w: %w", jwt.ErrTokenUnverifiable, err))
	}
	var state *keyState
	tok := &jwt.Token{Raw: raw, Method: method, Header: map[string]any{"alg": h.alg, "kid": h.kid}, Claims: claims, Signature: sig}
	key, err := v.cfg.Keys.keyfunc(ctx, &state)(tok)
	if err != nil {
		return nil, nil, h.classify(fmt.Errorf("%w: error while executing keyfunc: %w", jwt.ErrTokenUnverifiable, err))
	}
	// The signing input is the token up to its second dot: no copy.
	if err := method.Verify(raw[:len(h64)+1+len(c64)], sig, key); err != nil {
		return nil, nil, h.classify(fmt.Errorf("%w: %w", jwt.ErrTokenSignatureInvalid, err))
	}
	if err := v.validator.Validate(claims); err != nil {
		return nil, nil, fmt.Errorf("%w: %w: %w", ErrInvalidToken, jwt.ErrTokenInvalidClaims, err)
	}
	return claims, state, nil
}

func malformed(msg string, err error) error {
	if err == nil {
		return fmt.Errorf("%w: %w: %s", ErrInvalidToken, jwt.ErrTokenMalformed, msg)
	}
	return fmt.Errorf("%w: %w: %s: %w", ErrInvalidToken, jwt.ErrTokenMalformed, msg, err)
}

// header is what the chain reads in a JWT header.
type header struct {
	alg, kid     string
	algOK, kidOK bool // present, and strings
	// refused is the first of jku, x5u, jwk, x5c present, or "crit".
	refused string
}

// refusedHeaders are the parameters a header must not carry, in the order
// they are reported; crit comes after them.
var refusedHeaders = []string{"jku", "x5u", "jwk", "x5c"}

// check refuses the header tricks (docs/contract.md, Authentication) before
// any key is looked up, so that they can never trigger a JWKS refresh.
func (h *header) check() error {
	switch {
	case h.refused == "crit":
		// No extension is understood, so any crit is unknown (RFC 7515 4.1.11).
		return fmt.Errorf("%w: critical header parameters are not supported", ErrHeaderRefused)
	case h.refused != "":
		return fmt.Errorf("%w: header parameter %q is not accepted", ErrHeaderRefused, h.refused)
	case !h.kidOK || h.kid == "":
		// Without a kid the token would have to be tried against every
		// key: refused with the header checks (docs/contract.md,
		// Authentication, step 3).
		return fmt.Errorf("%w: token has no kid", ErrHeaderRefused)
	}
	return nil
}

// classify wraps a refusal in ErrInvalidToken, telling apart what jwt
// reports under one error: an algorithm outside the allow-list comes back
// as ErrTokenSignatureInvalid (a known algorithm) or ErrTokenUnverifiable
// (one jwt does not know), as a bad signature or a failed key lookup would.
func (h *header) classify(err error) error {
	switch {
	case !h.algOK:
		return fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrMalformedToken, err)
	case !slices.Contains(allowedAlgorithms, h.alg):
		return fmt.Errorf("%w: %w: %w", ErrInvalidToken, ErrAlgNotAllowed, err)
	}
	return fmt.Errorf("%w: %w", ErrInvalidToken, err)
}

// decodeHeader reads a JWT header as jwt's Parser does, into a map with
// encoding/json, except for the headers identity providers write (an
// object of plain ASCII strings and simple values, no member twice), which
// a fast path reads with the same result; anything else goes to the map.
func decodeHeader(b []byte) (header, error) {
	if h, ok := decodeHeaderFast(b); ok {
		return h, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return header{}, err
	}
	return headerOf(m), nil
}

// headerOf reads a header decoded into a map (a JSON null header is a nil
// map: no alg, no kid).
func headerOf(m map[string]any) header {
	var h header
	h.alg, h.algOK = m["alg"].(string)
	h.kid, h.kidOK = m["kid"].(string)
	for _, name := range refusedHeaders {
		if _, ok := m[name]; ok {
			h.refused = name
			break
		}
	}
	if _, ok := m["crit"]; ok && h.refused == "" {
		h.refused = "crit"
	}
	return h
}

// decodeHeaderFast reads b when it is an object whose members all have
// plain ASCII names, none twice, with alg and kid plain strings if
// present; it validates what it skips. It reports false for anything else.
func decodeHeaderFast(b []byte) (header, bool) {
	var h header
	s := scanner{b: b}
	s.ws()
	var names [16][]byte // members seen, to refuse a duplicate
	n := 0
	if !s.object(s.plainString, func(key []byte) bool {
		if n == len(names) {
			return false
		}
		for _, seen := range names[:n] {
			if string(seen) == string(key) {
				return false // the map keeps the last; let it decide
			}
		}
		names[n] = key
		n++
		switch string(key) {
		case "alg", "kid":
			if !s.peek('"') {
				return false // not a string: the map path says what it is
			}
			v, ok := s.plainString()
			if !ok {
				return false
			}
			if string(key) == "alg" {
				h.alg, h.algOK = string(v), true
			} else {
				h.kid, h.kidOK = string(v), true
			}
			return true
		default:
			return s.skip(0)
		}
	}) || !s.end() {
		return h, false
	}
	// As headerOf: the first of refusedHeaders in their order, then crit.
	for _, name := range refusedHeaders {
		if containsName(names[:n], name) {
			h.refused = name
			break
		}
	}
	if h.refused == "" && containsName(names[:n], "crit") {
		h.refused = "crit"
	}
	return h, true
}

func containsName(names [][]byte, name string) bool {
	for _, n := range names {
		if string(n) == name {
			return true
		}
	}
	return false
}
