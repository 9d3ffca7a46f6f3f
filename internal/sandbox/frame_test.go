package sandbox

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestDecodeFrame(t *testing.T) {
	const max = 16
	ok := encodeFrame(statusOK, []byte("result"))
	tests := []struct {
		name     string
		frame    []byte
		want     []byte
		wantKind error // nil: a result
		wantMsg  string
	}{
		{name: "result", frame: ok, want: []byte("result")},
		{name: "empty result", frame: encodeFrame(statusOK, nil), want: []byte{}},
		{name: "result at the cap", frame: encodeFrame(statusOK, bytes.Repeat([]byte("x"), max)), want: bytes.Repeat([]byte("x"), max)},
		{name: "result past the cap", frame: encodeFrame(statusOK, bytes.Repeat([]byte("x"), max+1)), wantKind: ErrMalformedOutput},
		{name: "malformed document", frame: encodeFrame(statusMalformedDoc, []byte("bad xref")), wantKind: ErrMalformedDocument, wantMsg: "bad xref"},
		{name: "reason with a control character", frame: encodeFrame(statusMalformedDoc, []byte("bad\nxref")), wantKind: ErrMalformedOutput},
		{name: "reason not UTF-8", frame: encodeFrame(statusMalformedDoc, []byte{0xff}), wantKind: ErrMalformedOutput},
		{name: "reason too long", frame: encodeFrame(statusMalformedDoc, bytes.Repeat([]byte("x"), MaxMessageBytes+1)), wantKind: ErrMalformedOutput},
		{name: "output limit", frame: encodeFrame(statusOutputLimit, nil), wantKind: ErrOutputTooLarge},
		{name: "output limit with a payload", frame: encodeFrame(statusOutputLimit, []byte("x")), wantKind: ErrMalformedOutput},
		{name: "nothing", frame: nil, wantKind: ErrMalformedOutput},
		{name: "header cut short", frame: ok[:frameHeaderLen-1], wantKind: ErrMalformedOutput},
		{name: "payload cut short", frame: ok[:len(ok)-1], wantKind: ErrMalformedOutput},
		{name: "bytes after the payload", frame: append(bytes.Clone(ok), 'x'), wantKind: ErrMalformedOutput},
		{name: "wrong magic", frame: append([]byte("SBX2"), ok[4:]...), wantKind: ErrMalformedOutput},
		{name: "unknown status", frame: encodeFrame('X', nil), wantKind: ErrMalformedOutput},
		{name: "length beyond the bytes", frame: []byte("SBX1O\xff\xff\xff\xff"), wantKind: ErrMalformedOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeFrame(tt.frame, max)
			if tt.wantKind == nil {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("decodeFrame: %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantKind) || got != nil {
				t.Fatalf("decodeFrame: %q, %v; want %v", got, err, tt.wantKind)
			}
			var re *RunError
			if errors.As(err, &re) && re.Message != tt.wantMsg {
				t.Fatalf("Message %q, want %q", re.Message, tt.wantMsg)
			}
		})
	}
}

func TestSanitizeMessage(t *testing.T) {
	long := strings.Repeat("é", MaxMessageBytes) // 2 bytes a rune: the cut falls inside one
	tests := []struct {
		name, in, want string
	}{
		{"plain", "bad xref", "bad xref"},
		{"control characters", "a\nb\x00c\x1b[0m\u0085d", "a b c [0m d"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"cut on a rune boundary", long, long[:MaxMessageBytes]},
		{"cut inside a rune", "x" + long, "x" + long[:MaxMessageBytes-2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sanitizeMessage(tt.in)
			if got != tt.want {
				t.Fatalf("sanitizeMessage(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if _, err := decodeFrame(encodeFrame(statusMalformedDoc, []byte(got)), 0); !errors.Is(err, ErrMalformedDocument) {
				t.Fatalf("the sanitised message does not make a valid frame: %v", err)
			}
		})
	}
}

func TestRunErrorText(t *testing.T) {
	tests := []struct {
		err        *RunError
		text, want string
	}{
		{&RunError{Kind: ErrMemoryLimit, Exit: "exit status 2", Stderr: "secret-looking bytes"}, "sandbox: memory limit (exit status 2)", "memory limit"},
		{&RunError{Kind: ErrMalformedDocument, Message: "bad xref"}, "sandbox: malformed document: bad xref", "bad xref"},
		{&RunError{Kind: ErrMalformedDocument}, "sandbox: malformed document", "malformed document"},
		{&RunError{Kind: ErrCrashed, Exit: "signal: segmentation fault"}, "sandbox: worker crashed (signal: segmentation fault)", "crash"},
		{&RunError{Kind: ErrTimeLimit, Exit: "signal: killed"}, "sandbox: time limit (signal: killed)", "time limit"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.text {
			t.Errorf("Error() = %q, want %q", got, tt.text)
		}
		if got := tt.err.Cause(); got != tt.want {
			t.Errorf("Cause() = %q, want %q", got, tt.want)
		}
		if strings.Contains(tt.err.Error(), "secret") || strings.Contains(tt.err.Cause(), "secret") {
			t.Errorf("stderr leaked into %q", tt.err.Error())
		}
	}
}

// FuzzDecodeFrame: whatever a worker writes, the parent's parser returns a
// result within the cap that re-encodes to exactly the input, one of the
// reported errors that re-encodes to it, or ErrMalformedOutput; it never
// panics.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(encodeFrame(statusOK, []byte(`{"pages":["text"]}`)), uint16(64))
	f.Add(encodeFrame(statusOK, nil), uint16(0))
	f.Add(encodeFrame(statusMalformedDoc, []byte("bad xref")), uint16(64))
	f.Add(encodeFrame(statusOutputLimit, nil), uint16(64))
	f.Add([]byte("SBX1O\x00\x00\x00\x05abc"), uint16(64))
	f.Add([]byte("SBX1M\xff\xff\xff\xff"), uint16(64))
	f.Add([]byte{}, uint16(1))
	f.Fuzz(func(t *testing.T, b []byte, max uint16) {
		got, err := decodeFrame(b, int(max))
		var re *RunError
		switch {
		case err == nil:
			if len(got) > int(max) {
				t.Fatalf("result of %d bytes past the cap %d", len(got), max)
			}
			if !bytes.Equal(encodeFrame(statusOK, got), b) {
				t.Fatalf("accepted %q, which is not the frame of its result", b)
			}
		case errors.As(err, &re) && re.Kind == ErrMalformedDocument:
			if len(re.Message) > MaxMessageBytes || !utf8.ValidString(re.Message) || strings.IndexFunc(re.Message, unicode.IsControl) >= 0 {
				t.Fatalf("reason %q passed the checks", re.Message)
			}
			if !bytes.Equal(encodeFrame(statusMalformedDoc, []byte(re.Message)), b) {
				t.Fatalf("accepted %q, which is not the frame of its reason", b)
			}
		case errors.As(err, &re) && re.Kind == ErrOutputTooLarge:
			if !bytes.Equal(encodeFrame(statusOutputLimit, nil), b) {
				t.Fatalf("accepted %q as the output-limit frame", b)
			}
		case err == ErrMalformedOutput:
			if got != nil {
				t.Fatal("result alongside ErrMalformedOutput")
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// FuzzSanitizeMessage: any parser error text becomes a reason the parent
// accepts.
func FuzzSanitizeMessage(f *testing.F) {
	f.Add("bad xref")
	f.Add("a\x00\n\xff" + strings.Repeat("é", MaxMessageBytes))
	f.Fuzz(func(t *testing.T, s string) {
		msg := sanitizeMessage(s)
		_, err := decodeFrame(encodeFrame(statusMalformedDoc, []byte(msg)), 0)
		var re *RunError
		if !errors.As(err, &re) || re.Kind != ErrMalformedDocument || re.Message != msg {
			t.Fatalf("sanitizeMessage(%q) = %q, refused: %v", s, msg, err)
		}
	})
}
