package extractor

import (
	"io"
	"strconv"
	"unicode/utf8"
)

// jsonWriter writes the extracted data as JSON while it is produced, in
// chunks of about flushAt bytes, so that a writer refusing to go past the
// output limit (the worker's, sandbox.ErrOutputTooLarge) stops the
// extraction at most one chunk after the limit: no result is built whole
// before its size is known, however long one field or page is. The first
// write error sticks; every later call does nothing, and flush returns it.
//
// Strings are escaped as encoding/json escapes them with SetEscapeHTML(false)
// (jsonw_test checks that byte for byte): '<', '>' and '&' stay one byte.
type jsonWriter struct {
	w   io.Writer
	buf []byte
	err error
}

// flushAt is the chunk size: the writer overshoots the limit by less.
const flushAt = 32 << 10

func newJSONWriter(w io.Writer) *jsonWriter {
	return &jsonWriter{w: w, buf: make([]byte, 0, flushAt+64)}
}

// raw writes s, which must be JSON text (punctuation, member names).
func (j *jsonWriter) raw(s string) {
	if j.err != nil {
		return
	}
	j.buf = append(j.buf, s...)
	j.maybeFlush()
}

func (j *jsonWriter) int(n int) {
	if j.err != nil {
		return
	}
	j.buf = strconv.AppendInt(j.buf, int64(n), 10)
	j.maybeFlush()
}

const hexDigits = "0123456789abcdef"

// str writes s as a JSON string. Invalid UTF-8 becomes U+FFFD, and U+2028
// and U+2029 are escaped, as encoding/json does.
func (j *jsonWriter) str(s string) {
	if j.err != nil {
		return
	}
	j.buf = append(j.buf, '"')
	start := 0 // s[start:i] is pending: bytes that need no escape
	for i := 0; i < len(s); {
		if i-start >= flushAt {
			j.buf = append(j.buf, s[start:i]...)
			start = i
			j.maybeFlush()
		}
		if j.err != nil {
			return
		}
		c := s[i]
		if c < utf8.RuneSelf && c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		size := 1
		if c >= utf8.RuneSelf {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError && r != '\u2028' && r != '\u2029' || r == utf8.RuneError && size != 1 {
				i += size // a valid rune written as it is
				continue
			}
		}
		j.buf = append(j.buf, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			j.buf = append(j.buf, '\\', c)
		case c == '\n':
			j.buf = append(j.buf, '\\', 'n')
		case c == '\r':
			j.buf = append(j.buf, '\\', 'r')
		case c == '\t':
			j.buf = append(j.buf, '\\', 't')
		case c == '\b':
			j.buf = append(j.buf, '\\', 'b')
		case c == '\f':
			j.buf = append(j.buf, '\\', 'f')
		case c < 0x20:
			j.buf = append(j.buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		case size == 1: // invalid UTF-8
			j.buf = append(j.buf, `\ufffd`...)
		default: // U+2028 or U+2029, encoded e2 80 a8 or e2 80 a9
			j.buf = append(j.buf, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xf])
		}
		i += size
		start = i
		j.maybeFlush()
	}
	j.buf = append(j.buf, s[start:]...)
	j.buf = append(j.buf, '"')
	j.maybeFlush()
}

// strs writes a JSON array of strings.
func (j *jsonWriter) strs(ss []string) {
	j.raw("[")
	for i, s := range ss {
		if i > 0 {
			j.raw(",")
		}
		j.str(s)
	}
	j.raw("]")
}

func (j *jsonWriter) maybeFlush() {
	if len(j.buf) >= flushAt {
		j.flush()
	}
}

// flush writes what is buffered and returns the first write error.
func (j *jsonWriter) flush() error {
	if j.err == nil && len(j.buf) > 0 {
		_, j.err = j.w.Write(j.buf)
		j.buf = j.buf[:0]
	}
	return j.err
}
