package documents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
)

// Dir is a Store on a local directory. Every access goes through os.Root, so
// no key can reach outside the directory, through symbolic links either.
type Dir struct {
	path string
}

// OpenDir returns a store on dir, creating it (0700) when missing.
func OpenDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("documents: file:// names no directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("documents: %w", err)
	}
	return &Dir{path: dir}, nil
}

// Location returns LocationFile.
func (d *Dir) Location() string { return LocationFile }

// Bucket returns "".
func (d *Dir) Bucket() string { return "" }

func (d *Dir) root() (*os.Root, error) {
	r, err := os.OpenRoot(d.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return r, nil
}

var (
	escapeOnce sync.Once
	escapeErr  error
)

// isEscape reports whether err is os.Root's refusal of a name resolving
// outside it. The error value is unexported; an absolute name makes the
// root return it without any I/O, which gives the value to compare with.
func isEscape(r *os.Root, err error) bool {
	escapeOnce.Do(func() {
		_, probe := r.Open("/")
		var pe *fs.PathError
		if errors.As(probe, &pe) {
			escapeErr = pe.Err
		}
	})
	return escapeErr != nil && errors.Is(err, escapeErr)
}

// classify maps an os.Root error to the package's sentinels.
func classify(r *os.Root, err error) error {
	switch {
	case isEscape(r, err):
		return fmt.Errorf("%w: resolves outside the document root", ErrInvalidKey)
	case errors.Is(err, fs.ErrNotExist):
		return ErrNotFound
	default:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
}

// Get reads key.
func (d *Dir) Get(ctx context.Context, key string, maxBytes int64) (*Object, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	maxBytes = maxOrDefault(maxBytes)
	root, err := d.root()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// Stat before opening: opening a FIFO would block, and a directory or
	// a device is not a document.
	st, err := root.Stat(key)
	if err != nil {
		return nil, classify(root, err)
	}
	if !st.Mode().IsRegular() {
		return nil, ErrNotFound
	}
	if st.Size() > maxBytes {
		return nil, tooLarge(st.Size(), maxBytes)
	}
	f, err := root.Open(key)
	if err != nil {
		return nil, classify(root, err)
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !st.Mode().IsRegular() {
		return nil, ErrNotFound // swapped between Stat and Open
	}
	// The file may grow after Stat.
	data, err := readAll(f, maxBytes, st.Size())
	if err != nil {
		return nil, err
	}
	return &Object{
		Key:          key,
		Data:         data,
		Size:         int64(len(data)),
		ETag:         fmt.Sprintf("%x-%x", st.ModTime().UnixNano(), st.Size()),
		LastModified: st.ModTime(),
	}, nil
}

// List returns up to limit keys under prefix, sorted. Symbolic links and
// other non-regular files are skipped.
func (d *Dir) List(_ context.Context, prefix string, limit int) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	root, err := d.root()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var keys []string
	err = fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			// Descend only where keys with the prefix can live.
			if p != "." && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() && strings.HasPrefix(p, prefix) && !isTemp(p) && CheckKey(p) == nil {
			keys = append(keys, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	sort.Strings(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	return keys, nil
}

const tempMarker = ".put-tmp-"

func isTemp(p string) bool { return strings.Contains(path.Base(p), tempMarker) }

// Put writes key atomically (temporary file, then rename), 0600.
func (d *Dir) Put(_ context.Context, key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	root, err := d.root()
	if err != nil {
		return err
	}
	defer root.Close()
	if dir := path.Dir(key); dir != "." {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return classify(root, err)
		}
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(key), "."+path.Base(key)+tempMarker+hex.EncodeToString(rnd[:]))
	if err := root.WriteFile(tmp, data, 0o600); err != nil {
		return classify(root, err)
	}
	if err := root.Rename(tmp, key); err != nil {
		_ = root.Remove(tmp)
		return classify(root, err)
	}
	return nil
}

// Ping checks that the directory can be opened and read.
func (d *Dir) Ping(context.Context) error {
	root, err := d.root()
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer f.Close()
	if _, err := f.ReadDir(1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}
