package binding

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// UnmarshalJSON decodes c exactly as encoding/json decodes the struct
// (RFC 7519 claims, with jwt's NumericDate and ClaimStrings), only faster
// for the claims an identity provider writes: a JSON object whose claims
// this package reads are plain ASCII strings, whole seconds and a cnf
// object. Anything else (an escape in one of those strings, a fractional
// or quoted date, a null, a key that differs from a claim's name only in
// case, a claim given twice, invalid JSON) is handed to encoding/json,
// which decides. So the result, and whether there is an error, are those
// of encoding/json for every input; FuzzClaimsDecode checks it.
//
// encoding/json spends about 4 µs on a token's claims on the machine of
// bench/README.md, most of the difference between verifying a token's
// signature and verifying the token (bench rows 2a, 2c). jwt still parses
// the token, checks its signature and validates these claims.
func (c *Claims) UnmarshalJSON(b []byte) error {
	if c.isZero() {
		var out Claims
		if decodeClaims(b, &out) {
			*c = out
			return nil
		}
	}
	return json.Unmarshal(b, (*plainClaims)(c))
}

// plainClaims is Claims without its UnmarshalJSON: what encoding/json
// decodes.
type plainClaims Claims

// isZero reports whether c is the zero Claims: the fast path decodes into
// a fresh value only (encoding/json would merge into an existing one).
func (c *Claims) isZero() bool {
	return c.Issuer == "" && c.Subject == "" && c.Audience == nil && c.ExpiresAt == nil && c.NotBefore == nil &&
		c.IssuedAt == nil && c.ID == "" && c.Confirmation == nil && c.AuthorizedParty == "" && c.ClientID == "" && c.Scope == ""
}

// claimNames are the JSON names of Claims' fields (TestClaimNames keeps
// them in step with the struct), in the order of the bits of decodeClaims.
var claimNames = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "cnf", "azp", "client_id", "scope"}

// cnfName is the one member of cnf that Cnf has.
const cnfName = "x5t#S256"

// maxSkipDepth bounds the nesting of the values the fast path skips;
// deeper ones go to encoding/json.
const maxSkipDepth = 32

// decodeClaims decodes b into out when b is a JSON object of the shape
// UnmarshalJSON describes, and reports whether it did. It validates what it
// reads: it returns false on anything that is not valid JSON.
func decodeClaims(b []byte, out *Claims) bool {
	s := scanner{b: b}
	s.ws()
	var seen uint16
	return s.object(s.plainString, func(key []byte) bool {
		idx := knownClaim(key)
		switch {
		case idx >= 0:
			if seen&(1<<idx) != 0 {
				return false // encoding/json keeps the last; let it
			}
			seen |= 1 << idx
			return s.claim(idx, out)
		case foldsTo(key, claimNames...):
			return false // encoding/json matches names regardless of case
		default:
			return s.skip(0)
		}
	}) && s.end()
}

func knownClaim(key []byte) int {
	for i, n := range claimNames {
		if string(key) == n {
			return i
		}
	}
	return -1
}

// foldsTo reports whether key equals one of names regardless of case, as
// encoding/json matches them. Every key is compared, including one without
// upper-case letters: a name may have some ("x5t#S256").
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if len(n) == len(key) && strings.EqualFold(string(key), n) {
			return true
		}
	}
	return false
}

// claim decodes the value of claim idx (claimNames) into out.
func (s *scanner) claim(idx int, out *Claims) bool {
	switch claimNames[idx] {
	case "aud":
		return s.audience(&out.Audience)
	case "exp":
		return s.date(&out.ExpiresAt)
	case "nbf":
		return s.date(&out.NotBefore)
	case "iat":
		return s.date(&out.IssuedAt)
	case "cnf":
		return s.cnf(&out.Confirmation)
	}
	v, ok := s.plainString()
	if !ok {
		return false
	}
	str := string(v)
	switch claimNames[idx] {
	case "iss":
		out.Issuer = str
	case "sub":
		out.Subject = str
	case "jti":
		out.ID = str
	case "azp":
		out.AuthorizedParty = str
	case "client_id":
		out.ClientID = str
	case "scope":
		out.Scope = str
	}
	return true
}

// date reads whole seconds since the epoch: a JSON integer of at most 15
// digits, which a float64 holds exactly (jwt goes through one).
func (s *scanner) date(dst **jwt.NumericDate) bool {
	start := s.i
	var n int64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int64(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || digits > 15 || (digits > 1 && s.b[start] == '0') {
		return false
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return false
	}
	*dst = jwt.NewNumericDate(time.Unix(n, 0))
	return true
}

// audience reads a string or an array of strings, as jwt.ClaimStrings does.
func (s *scanner) audience(dst *jwt.ClaimStrings) bool {
	if s.peek('"') {
		v, ok := s.plainString()
		if !ok {
			return false
		}
		*dst = jwt.ClaimStrings{string(v)}
		return true
	}
	var aud jwt.ClaimStrings
	if !s.array(func() bool {
		v, ok := s.plainString()
		if !ok {
			return false
		}
		aud = append(aud, string(v))
		return true
	}) {
		return false
	}
	*dst = aud // nil for an empty array, as ClaimStrings leaves it
	return true
}

// cnf reads the confirmation object.
func (s *scanner) cnf(dst **Cnf) bool {
	var c Cnf
	seen := false
	if !s.object(s.plainString, func(key []byte) bool {
		switch {
		case string(key) == cnfName:
			if seen {
				return false
			}
			seen = true
			v, ok := s.plainString()
			if !ok {
				return false
			}
			c.X5tS256 = string(v)
			return true
		case foldsTo(key, cnfName):
			return false
		default:
			return s.skip(0)
		}
	}) {
		return false
	}
	*dst = &c
	return true
}

// scanner reads JSON from b at i.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

func (s *scanner) consume(c byte) bool {
	if s.peek(c) {
		s.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// plainString reads a string of printable ASCII without escapes and
// returns its contents (which alias b); any other string is refused, for
// encoding/json to decode.
func (s *scanner) plainString() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// object reads a JSON object. For each member it reads the key with key
// and calls member with it, s at the member's value, which member reads;
// it stops at the first false, from either.
func (s *scanner) object(key func() ([]byte, bool), member func(key []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	s.ws()
	if s.consume('}') {
		return true
	}
	for {
		s.ws()
		k, ok := key()
		if !ok {
			return false
		}
		s.ws()
		if !s.consume(':') {
			return false
		}
		s.ws()
		if !member(k) {
			return false
		}
		s.ws()
		if !s.consume(',') {
			return s.consume('}')
		}
	}
}

// array reads a JSON array, calling elem with s at each element, which
// elem reads; it stops at the first false.
func (s *scanner) array(elem func() bool) bool {
	if !s.consume('[') {
		return false
	}
	s.ws()
	if s.consume(']') {
		return true
	}
	for {
		s.ws()
		if !elem() {
			return false
		}
		s.ws()
		if !s.consume(',') {
			return s.consume(']')
		}
	}
}

// anyKey reads a key that may be any valid string, for an object whose
// names do not matter; it returns no contents.
func (s *scanner) anyKey() ([]byte, bool) { return nil, s.skipString() }

// skip reads one JSON value of any kind and validates it.
func (s *scanner) skip(depth int) bool {
	if s.i >= len(s.b) || depth > maxSkipDepth {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.skipString()
	case c == '{':
		return s.object(s.anyKey, func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		return s.array(func() bool { return s.skip(depth + 1) })
	case c == '-' || (c >= '0' && c <= '9'):
		return s.skipNumber()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return true
			}
		}
		return false
	}
}

// skipString reads a string with any valid escapes; bytes of 0x80 and
// above pass as encoding/json's validity check lets them.
func (s *scanner) skipString() bool {
	if !s.consume('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+4 >= len(s.b) {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !isHex(h) {
						return false
					}
				}
				s.i += 5
			default:
				return false
			}
		default:
			s.i++
		}
	}
	return false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// skipNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) skipNumber() bool {
	s.consume('-')
	switch {
	case s.consume('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.consume('.') {
		if s.digits() == 0 {
			return false
		}
	}
	if s.consume('e') || s.consume('E') {
		if !s.consume('+') {
			s.consume('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}
