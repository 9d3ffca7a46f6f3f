// Package envconfig is the one way the agents and the Lambda read their
// configuration from the environment: typed getters over a getenv function
// (os.Getenv, or a map in tests) that collect every problem, so that one
// start-up reports all of them at once, each naming its variable.
//
// It is deliberately small. The configurations it serves derive defaults
// from other settings (the JWKS URL from the issuer, peer URLs from the
// roster), check combinations, and promise exact messages, which a
// struct-tag library would leave to code around it anyway.
package envconfig

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Reader reads variables and collects what is wrong with them. The zero
// value is not usable; call New.
type Reader struct {
	getenv func(string) string
	prefix string
	errs   []error
}

// New returns a Reader over getenv whose errors start with prefix ("config",
// "lambda"): "config: MTLS_ENABLED must be true or false, got \"yes\"". An
// empty prefix adds none.
func New(getenv func(string) string, prefix string) *Reader {
	return &Reader{getenv: getenv, prefix: prefix}
}

// Raw returns the value of name as set, untrimmed ("" when unset). For
// contents that are not settings (PEM material).
func (r *Reader) Raw(name string) string { return r.getenv(name) }

// String returns the value of name without surrounding white space, or def
// when that is empty.
func (r *Reader) String(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// Bool returns name parsed as a boolean (strconv.ParseBool: true, false, 1,
// 0, ...), or def when unset.
func (r *Reader) Bool(name string, def bool) bool {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.Failf("%s must be true or false, got %q", name, v)
		return def
	}
	return b
}

// Int returns name as an integer from lo to hi, or def when unset.
func (r *Reader) Int(name string, def, lo, hi int) int {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.Failf("%s must be %d..%d, got %q", name, lo, hi, v)
		return def
	}
	return n
}

// Duration returns name parsed as a Go duration ("90s", "10m", "1h30m")
// from lo to hi, or def when unset.
func (r *Reader) Duration(name string, def, lo, hi time.Duration) time.Duration {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		r.Failf("%s must be a duration from %s to %s (such as %s), got %q", name, lo, hi, def, v)
		return def
	}
	return d
}

// Size units Bytes accepts: powers of 1024, spelled as IEC prefixes so that
// nobody reads 256MiB as 256 000 000 bytes.
var sizeUnits = []struct {
	suffix string
	factor int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// Bytes returns name as a size, a whole number with an optional unit B, KiB,
// MiB or GiB ("256MiB", "1GiB", "4096"), from lo to hi bytes, or def when
// unset.
func (r *Reader) Bytes(name string, def, lo, hi int64) int64 {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	n, ok := ParseBytes(v)
	if !ok || n < lo || n > hi {
		r.Failf("%s must be a size from %s to %s (such as %s), got %q", name, FormatBytes(lo), FormatBytes(hi), FormatBytes(def), v)
		return def
	}
	return n
}

// ParseBytes reads a size written as Bytes accepts it.
func ParseBytes(s string) (int64, bool) {
	factor := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, factor = strings.TrimSpace(num), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/factor {
		return 0, false
	}
	return n * factor, true
}

// FormatBytes writes n in the largest unit that divides it ("256MiB").
func FormatBytes(n int64) string {
	for _, u := range sizeUnits {
		if n != 0 && n%u.factor == 0 {
			return strconv.FormatInt(n/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// HTTPSURL checks that value, the setting of name, is an absolute https URL
// with a host, and returns it parsed (nil when it is not). why, when given,
// is said in the message: "OIDC_JWKS_URL must be an https URL (why), got ...".
func (r *Reader) HTTPSURL(name, value string, why ...string) *url.URL {
	u, err := url.Parse(value)
	if err == nil && u.Scheme == "https" && u.Host != "" {
		return u
	}
	because := ""
	if len(why) > 0 {
		because = " (" + strings.Join(why, "; ") + ")"
	}
	r.Failf("%s must be an https URL%s, got %q", name, because, value)
	return nil
}

// Failf records a problem. The message names the variable; it is prefixed
// with the Reader's prefix.
func (r *Reader) Failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if r.prefix != "" {
		msg = r.prefix + ": " + msg
	}
	r.errs = append(r.errs, errors.New(msg))
}

// Err returns every recorded problem joined (errors.Join), or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }
