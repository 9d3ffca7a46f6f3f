// Package documents reads the documents the agents process, from a local
// directory (file://DIR) or an S3 bucket (s3://BUCKET[/PREFIX]).
//
// An s3_key is an object key, never a path: every key is checked before
// any I/O, and a key that is empty, absolute, contains a backslash, a
// control character, a "." or ".." segment, or that would resolve outside
// the root is refused with ErrInvalidKey. File stores also open through
// os.Root, which refuses escapes through symbolic links.
package documents

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Errors callers map to JSON-RPC codes.
var (
	ErrInvalidKey  = errors.New("documents: invalid document key")
	ErrNotFound    = errors.New("documents: document not found")
	ErrTooLarge    = errors.New("documents: document too large")
	ErrUnavailable = errors.New("documents: document store unavailable")
)

// DefaultMaxBytes bounds a document (20 MiB).
const DefaultMaxBytes = 20 << 20

// Object is a document's content and metadata.
type Object struct {
	Key    string
	Bucket string // "" for a local directory
	Data   []byte
	Size   int64
	ETag   string
}

// Store reads documents.
type Store interface {
	// Get reads key, refusing documents larger than maxBytes.
	Get(ctx context.Context, key string, maxBytes int64) (*Object, error)
	// List returns up to limit keys under prefix, sorted.
	List(ctx context.Context, prefix string, limit int) ([]string, error)
	// Put writes a document (tests, the demo).
	Put(ctx context.Context, key string, data []byte) error
	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
	// Bucket is the S3 bucket served, or "" for a directory.
	Bucket() string
}

// Open returns the store rawURL names: file://DIR or s3://BUCKET[/PREFIX].
// After file:// comes a filesystem path, relative to the working directory
// unless it starts with "/".
func Open(ctx context.Context, rawURL string) (Store, error) {
	switch {
	case strings.HasPrefix(rawURL, "file://"):
		return OpenDir(strings.TrimPrefix(rawURL, "file://"))
	case strings.HasPrefix(rawURL, "s3://"):
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(rawURL, "s3://"), "/")
		if bucket == "" {
			return nil, fmt.Errorf("documents: %q names no bucket", rawURL)
		}
		return OpenS3(ctx, bucket, prefix, nil)
	default:
		return nil, fmt.Errorf("documents: DOCUMENTS_URL must be file://DIR or s3://BUCKET[/PREFIX], got %q", rawURL)
	}
}

// CheckKey validates an object key without touching any store.
func CheckKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("%w: must be 1 to 1024 bytes", ErrInvalidKey)
	}
	if strings.HasPrefix(key, "/") || strings.ContainsRune(key, '\\') {
		return fmt.Errorf("%w: absolute paths and backslashes are not keys", ErrInvalidKey)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control characters are not allowed", ErrInvalidKey)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: empty, '.' and '..' segments are not allowed", ErrInvalidKey)
		}
	}
	if len(key) >= 2 && key[1] == ':' {
		return fmt.Errorf("%w: drive letters are not keys", ErrInvalidKey)
	}
	return nil
}

// checkPrefix validates a List prefix: like a key, but may be empty or end
// with "/".
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return CheckKey(strings.TrimSuffix(prefix, "/"))
}
