package sandbox

import (
	"encoding/binary"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The result frame: the whole of a worker's standard output.
//
//	offset 0  4 bytes  magic "SBX1"
//	offset 4  1 byte   status: 'O' result, 'M' malformed document, 'L' output limit
//	offset 5  4 bytes  payload length, big-endian
//	offset 9  payload  'O': the result bytes (at most the output limit)
//	                   'M': the parser's reason (UTF-8, no control characters,
//	                        at most MaxMessageBytes)
//	                   'L': empty
//
// Nothing may follow the payload. The length lets the parent tell a
// complete frame from one cut short by a dying worker.
const (
	frameMagic     = "SBX1"
	frameHeaderLen = 9

	statusOK           = 'O'
	statusMalformedDoc = 'M'
	statusOutputLimit  = 'L'
)

// MaxMessageBytes bounds the reason a worker gives for a malformed document.
const MaxMessageBytes = 512

// putHeader writes the frame header into h (frameHeaderLen bytes).
func putHeader(h []byte, status byte, n int) {
	copy(h, frameMagic)
	h[4] = status
	binary.BigEndian.PutUint32(h[5:frameHeaderLen], uint32(n))
}

// encodeFrame returns a whole frame; the worker builds frames in place
// (see limitWriter), this is for the other statuses and for tests.
func encodeFrame(status byte, payload []byte) []byte {
	f := make([]byte, frameHeaderLen+len(payload))
	putHeader(f, status, len(payload))
	copy(f[frameHeaderLen:], payload)
	return f
}

// decodeFrame checks a worker's whole standard output and returns the result
// payload, or the error the frame reports. Every deviation from the format
// is ErrMalformedOutput: the bytes come from a process that parsed a hostile
// document and are trusted for nothing.
func decodeFrame(b []byte, maxOutput int) ([]byte, error) {
	if len(b) < frameHeaderLen || string(b[:4]) != frameMagic {
		return nil, ErrMalformedOutput
	}
	n := binary.BigEndian.Uint32(b[5:frameHeaderLen])
	payload := b[frameHeaderLen:]
	if uint64(n) != uint64(len(payload)) {
		return nil, ErrMalformedOutput
	}
	switch b[4] {
	case statusOK:
		if len(payload) > maxOutput {
			return nil, ErrMalformedOutput
		}
		return payload, nil
	case statusMalformedDoc:
		msg := string(payload)
		if len(msg) > MaxMessageBytes || !utf8.ValidString(msg) || strings.IndexFunc(msg, unicode.IsControl) >= 0 {
			return nil, ErrMalformedOutput
		}
		return nil, &RunError{Kind: ErrMalformedDocument, Message: msg}
	case statusOutputLimit:
		if len(payload) != 0 {
			return nil, ErrMalformedOutput
		}
		return nil, &RunError{Kind: ErrOutputTooLarge}
	}
	return nil, ErrMalformedOutput
}

// sanitizeMessage makes a parser's error text fit the frame: valid UTF-8,
// control characters replaced by spaces, at most MaxMessageBytes, cut on a
// rune boundary.
func sanitizeMessage(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= MaxMessageBytes {
		return s
	}
	cut := MaxMessageBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
