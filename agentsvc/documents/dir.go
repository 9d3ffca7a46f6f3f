package documents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Dir is a Store on a local directory.
type Dir struct {
	path string
}

// OpenDir returns a store on dir, creating it (0700) when missing.
func OpenDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("documents: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("documents: %w", err)
	}
	return &Dir{path: dir}, nil
}

// Bucket returns "".
func (d *Dir) Bucket() string { return "" }

func (d *Dir) root() (*os.Root, error) {
	r, err := os.OpenRoot(d.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return r, nil
}

// Get reads key.
func (d *Dir) Get(_ context.Context, key string, maxBytes int64) (*Object, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	root, err := d.root()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, ErrNotFound
	case err != nil && strings.Contains(err.Error(), "escapes"):
		return nil, fmt.Errorf("%w: resolves outside the document root", ErrInvalidKey)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if !st.Mode().IsRegular() {
		return nil, ErrNotFound
	}
	if st.Size() > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, st.Size(), maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w: limit %d", ErrTooLarge, maxBytes)
	}
	return &Object{Key: key, Data: data, Size: int64(len(data)), ETag: fmt.Sprintf("%x-%x", st.ModTime().UnixNano(), st.Size())}, nil
}

// List returns up to limit keys under prefix. Symbolic links are skipped.
func (d *Dir) List(_ context.Context, prefix string, limit int) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	var keys []string
	err := filepath.WalkDir(d.path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(d.path, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) && CheckKey(key) == nil {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	sort.Strings(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	return keys, nil
}

// Put writes key atomically.
func (d *Dir) Put(_ context.Context, key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	root, err := d.root()
	if err != nil {
		return err
	}
	defer root.Close()
	if dir := filepath.Dir(filepath.FromSlash(key)); dir != "." {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	tmp := key + ".tmp-put"
	if err := root.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := root.Rename(tmp, key); err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Ping checks the directory is readable.
func (d *Dir) Ping(context.Context) error {
	root, err := d.root()
	if err != nil {
		return err
	}
	return root.Close()
}
