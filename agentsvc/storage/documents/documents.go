// Package documents reads the documents the agents process, from a local
// directory (file://DIR) or an S3 bucket (s3://BUCKET[/PREFIX]).
//
// An s3_key is an object key, never a path. Every key is checked by CheckKey
// before any I/O: a key that is empty, longer than 1024 bytes, absolute,
// holds a backslash, a NUL or another control character, invalid UTF-8, a
// "." or ".." segment or an empty segment is refused with ErrInvalidKey, and
// so is a key that would become one of those once percent-decoded. A
// directory store also opens through os.Root, which refuses anything that
// would resolve outside the directory, symbolic links included.
package documents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Errors callers branch on; the extractor maps them to JSON-RPC codes.
// Failures of a backend wrap ErrUnavailable together with the cause.
var (
	ErrInvalidKey  = errors.New("documents: invalid document key")
	ErrNotFound    = errors.New("documents: document not found")
	ErrTooLarge    = errors.New("documents: document too large")
	ErrUnavailable = errors.New("documents: document store unavailable")
)

// DefaultMaxBytes bounds a document when Get is given no limit (20 MiB).
const DefaultMaxBytes = 20 << 20

// MaxKeyLen is the longest key accepted, in bytes (S3's own limit).
const MaxKeyLen = 1024

// LocationFile is what Location returns for a directory store.
const LocationFile = "file"

// Object is a document's content and metadata.
type Object struct {
	Key    string
	Bucket string // "" for a directory store
	Data   []byte
	Size   int64
	// ETag is S3's entity tag (quotes removed), or a modification-time and
	// size tag for a directory store. It may be empty.
	ETag string
	// LastModified is the object's modification time; zero when the store
	// did not say.
	LastModified time.Time
}

// Store reads documents by key.
type Store interface {
	// Get reads key. A document larger than maxBytes (DefaultMaxBytes when
	// maxBytes <= 0) is refused with ErrTooLarge without being read whole.
	Get(ctx context.Context, key string, maxBytes int64) (*Object, error)
	// List returns up to limit keys (all when limit <= 0) starting with
	// prefix, sorted. Entries that are not valid keys are left out.
	List(ctx context.Context, prefix string, limit int) ([]string, error)
	// Ping reports whether the store can be read (health checks).
	Ping(ctx context.Context) error
	// Location is the bucket served, or LocationFile for a directory.
	Location() string
	// Bucket is the bucket served, or "" for a directory.
	Bucket() string
}

// Writer is implemented by stores that can also write documents: both
// stores of this package do. The demo and tests use it to seed documents.
type Writer interface {
	Put(ctx context.Context, key string, data []byte) error
}

// Put writes data under key in s, when s is a Writer.
func Put(ctx context.Context, s Store, key string, data []byte) error {
	w, ok := s.(Writer)
	if !ok {
		return fmt.Errorf("documents: %T cannot write", s)
	}
	return w.Put(ctx, key, data)
}

// Options configure Open.
type Options struct {
	// S3Client replaces the client built from the default AWS
	// configuration (tests). *s3.Client satisfies it.
	S3Client S3API
}

// Open returns the store rawURL names (DOCUMENTS_URL): file://DIR or
// s3://BUCKET[/PREFIX]. After file:// comes a filesystem path, relative to the
// working directory unless it starts with "/"; it is not URL-decoded. opts is
// optional; at most one may be given.
func Open(ctx context.Context, rawURL string, opts ...Options) (Store, error) {
	var o Options
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		return nil, errors.New("documents: Open takes at most one Options")
	}
	switch {
	case strings.HasPrefix(rawURL, "file://"):
		return OpenDir(strings.TrimPrefix(rawURL, "file://"))
	case strings.HasPrefix(rawURL, "s3://"):
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(rawURL, "s3://"), "/")
		return OpenS3(ctx, bucket, prefix, o.S3Client)
	default:
		return nil, fmt.Errorf("documents: DOCUMENTS_URL must be file://DIR or s3://BUCKET[/PREFIX], got %q", rawURL)
	}
}

// CheckKey validates an object key without touching any store.
//
// A key that percent-decodes, once or repeatedly ("%252e" is "%2e" is "."),
// into an invalid key, such
// as "%2e%2e/x" or "%2Fetc/passwd", is refused too: no store here decodes
// keys, but a proxy, a console or another client on the way may, and an
// accepted key must not turn into a traversal there. Keys whose "%" encodes
// nothing harmful ("100%.csv", "a%20b.pdf") are accepted as they are.
func CheckKey(key string) error {
	if err := checkRawKey(key); err != nil {
		return err
	}
	// Each round shortens the key, so this ends within len(key)/3 rounds.
	for {
		if !strings.Contains(key, "%") {
			return nil
		}
		dec, err := url.PathUnescape(key)
		if err != nil || dec == key {
			return nil // not an encoding: the "%" is part of the name
		}
		if err := checkRawKey(dec); err != nil {
			return fmt.Errorf("%w: percent-encoded form of an invalid key", ErrInvalidKey)
		}
		key = dec
	}
}

// checkRawKey validates key as written, without decoding it.
func checkRawKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: must be 1 to %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("%w: absolute paths are not keys", ErrInvalidKey)
	}
	for _, r := range key {
		if r == '\\' {
			return fmt.Errorf("%w: backslashes are not allowed", ErrInvalidKey)
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: control characters are not allowed", ErrInvalidKey)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: empty, \".\" and \"..\" segments are not allowed", ErrInvalidKey)
		}
	}
	// "C:x" is relative on Unix but a drive path elsewhere; no honest
	// object key needs that shape.
	if len(key) >= 2 && key[1] == ':' && isASCIILetter(key[0]) {
		return fmt.Errorf("%w: drive letters are not keys", ErrInvalidKey)
	}
	return nil
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// checkPrefix validates a List prefix: empty, or a key optionally followed by
// "/".
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return CheckKey(strings.TrimSuffix(prefix, "/"))
}

func maxOrDefault(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return DefaultMaxBytes
	}
	return maxBytes
}

// readAll reads r whole but never more than limit+1 bytes: the size a
// backend announced before the read may be wrong (a file that grows, an
// object without Content-Length), so the limit holds whatever was announced.
// The announced size (0 when unknown) sizes the buffer, so that a document
// costs its own size in memory rather than the doublings of a growing one.
func readAll(r io.Reader, limit, announced int64) ([]byte, error) {
	// io.ReadAll with a first capacity: one byte more than announced, so
	// that the read that finds the end needs no growth.
	data := make([]byte, 0, min(max(announced, 0), limit)+1)
	lr := io.LimitReader(r, limit+1)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)] // the announced size was wrong
		}
		n, err := lr.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(-1, limit)
	}
	return data, nil
}

func tooLarge(size, limit int64) error {
	if size < 0 {
		return fmt.Errorf("%w: over the %d-byte limit", ErrTooLarge, limit)
	}
	return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, limit)
}
