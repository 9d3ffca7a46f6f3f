package documents_test

import (
	"bytes"
	"errors"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/storage/documents"
)

func TestCheckKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a.pdf", true},
		{"incoming/2026/report.csv", true},
		{"with space.pdf", true},
		{"ünïcode.csv", true},
		{"a..b.pdf", true},
		{"...", true}, // a name, not a segment of the path grammar
		{".hidden.csv", true},
		{strings.Repeat("k", 1024), true},
		{"100%.csv", true},      // "%" that encodes nothing
		{"a%20b.pdf", true},     // decodes to a valid key
		{"a%2Fb.csv", true},     // "a/b.csv" is valid too
		{"50%25 off.csv", true}, // "50% off.csv"

		{"", false},
		{strings.Repeat("k", 1025), false},
		{"/etc/passwd", false},
		{"//server/share", false},
		{"..", false},
		{".", false},
		{"../secret", false},
		{"a/../../b", false},
		{"a/..", false},
		{"a/./b", false},
		{"./a", false},
		{"a//b", false},
		{"a/", false},
		{`a\b`, false},
		{`..\..\windows\win.ini`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\tb", false},
		{"a\x7fb", false},
		{"a\u0085b", false}, // C1 control
		{"a\xffb", false},   // invalid UTF-8
		{"C:/x", false},
		{"c:x", false},

		// Percent-encoded forms of the above, once or more.
		{"%2e%2e/secret", false},
		{"%2E%2E%2Fsecret", false},
		{"a/%2e%2e/b", false},
		{"a/%2e/b", false},
		{"%2e", false},
		{"%252e%252e/x", false},
		{"%25252e%25252e/x", false},
		{"%252525252e%252525252e/x", false},
		{"%2fetc/passwd", false},
		{"a%00b", false},
		{"a%5cb", false},
		{"a%0ab", false},
		{"C%3a/x", false},
	}
	for _, tc := range tests {
		err := documents.CheckKey(tc.key)
		if tc.ok && err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", tc.key, err)
		}
		if !tc.ok && !errors.Is(err, documents.ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalidKey", tc.key, err)
		}
	}
}

// newDir returns a directory store on base/docs, with base/secret.txt
// outside it, and symbolic links inside it that point out.
func newDir(t *testing.T) (*documents.Dir, string) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "docs")
	store, err := documents.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	write := func(p string, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(base, "secret.txt"), "secret")
	write(filepath.Join(base, "outside", "x.csv"), "secret,dir\n")
	write(filepath.Join(root, "in", "a.csv"), "x,y\n1,2\n")
	write(filepath.Join(root, "b.pdf"), "%PDF-1.4")
	write(filepath.Join(root, "ten.csv"), "0123456789")
	for link, target := range map[string]string{
		"escape.csv":         filepath.Join(base, "secret.txt"), // absolute target outside
		"rel-escape.csv":     "../secret.txt",                   // relative target outside
		"outdir":             filepath.Join(base, "outside"),    // directory outside
		"in/inside-link.csv": "a.csv",                           // stays inside: allowed
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return store, root
}

func TestDirGet(t *testing.T) {
	store, _ := newDir(t)
	tests := []struct {
		key  string
		max  int64
		want string
		err  error
	}{
		{key: "in/a.csv", want: "x,y\n1,2\n"},
		{key: "in/inside-link.csv", want: "x,y\n1,2\n"},
		{key: "ten.csv", max: 10, want: "0123456789"},
		{key: "ten.csv", max: 9, err: documents.ErrTooLarge},
		{key: "missing.pdf", err: documents.ErrNotFound},
		{key: "in/missing.pdf", err: documents.ErrNotFound},
		{key: "in", err: documents.ErrNotFound}, // a directory is not a document
		{key: "escape.csv", err: documents.ErrInvalidKey},
		{key: "rel-escape.csv", err: documents.ErrInvalidKey},
		{key: "outdir/x.csv", err: documents.ErrInvalidKey},
		{key: "../secret.txt", err: documents.ErrInvalidKey},
		{key: "in/../../secret.txt", err: documents.ErrInvalidKey},
		{key: "/etc/passwd", err: documents.ErrInvalidKey},
		{key: `..\secret.txt`, err: documents.ErrInvalidKey},
		{key: "in/a.csv\x00.pdf", err: documents.ErrInvalidKey},
		{key: "./in/a.csv", err: documents.ErrInvalidKey},
		{key: "%2e%2e/secret.txt", err: documents.ErrInvalidKey},
		{key: "in/%2e%2e/%2e%2e/secret.txt", err: documents.ErrInvalidKey},
	}
	for _, tc := range tests {
		obj, err := store.Get(t.Context(), tc.key, tc.max)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || obj != nil {
				t.Errorf("Get(%q, %d) = %v, %v; want %v and no object", tc.key, tc.max, obj, err, tc.err)
			}
			continue
		}
		if err != nil || string(obj.Data) != tc.want || obj.Size != int64(len(tc.want)) || obj.Key != tc.key || obj.Bucket != "" || obj.ETag == "" || obj.LastModified.IsZero() {
			t.Errorf("Get(%q) = %+v, %v", tc.key, obj, err)
		}
	}
}

// TestDirInvalidKeyBeforeIO shows that keys are refused before the
// directory is touched: with the directory gone, a bad key is still
// ErrInvalidKey, and only a valid one reaches the file system.
func TestDirInvalidKeyBeforeIO(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "docs")
	store, err := documents.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../x", "/x", "a/./b", `a\b`, "a\x00"} {
		if _, err := store.Get(t.Context(), key, 0); !errors.Is(err, documents.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := store.Put(t.Context(), key, []byte("x")); !errors.Is(err, documents.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := store.Get(t.Context(), "x.csv", 0); !errors.Is(err, documents.ErrUnavailable) {
		t.Errorf("Get on a removed directory = %v, want ErrUnavailable", err)
	}
	if err := store.Ping(t.Context()); !errors.Is(err, documents.ErrUnavailable) {
		t.Errorf("Ping on a removed directory = %v, want ErrUnavailable", err)
	}
}

// TestDirTooLargeIsNotRead: a document over the limit is refused from its
// size, so a sparse multi-GiB file costs nothing.
func TestDirTooLargeIsNotRead(t *testing.T) {
	store, root := newDir(t)
	f, err := os.Create(filepath.Join(root, "huge.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 << 30); err != nil {
		t.Skipf("sparse file: %v", err)
	}
	f.Close()
	if _, err := store.Get(t.Context(), "huge.csv", 0); !errors.Is(err, documents.ErrTooLarge) {
		t.Fatalf("Get = %v, want ErrTooLarge", err)
	}
}

func TestDirList(t *testing.T) {
	store, _ := newDir(t)
	ctx := t.Context()
	if err := documents.Put(ctx, store, "in/sub/c.csv", []byte("c")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		prefix string
		limit  int
		want   string
		err    error
	}{
		// Symbolic links are never listed, inside or out.
		{"", 0, "b.pdf in/a.csv in/sub/c.csv ten.csv", nil},
		{"", 2, "b.pdf in/a.csv", nil},
		{"in/", 0, "in/a.csv in/sub/c.csv", nil},
		{"in/s", 0, "in/sub/c.csv", nil},
		{"in", 0, "in/a.csv in/sub/c.csv", nil},
		{"t", 0, "ten.csv", nil},
		{"nothing/", 0, "", nil},
		{"../", 0, "", documents.ErrInvalidKey},
		{"/", 0, "", documents.ErrInvalidKey},
	}
	for _, tc := range tests {
		keys, err := store.List(ctx, tc.prefix, tc.limit)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("List(%q) = %v, want %v", tc.prefix, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(keys, " ") != tc.want {
			t.Errorf("List(%q, %d) = %q, %v; want %q", tc.prefix, tc.limit, keys, err, tc.want)
		}
	}
}

func TestDirPut(t *testing.T) {
	store, root := newDir(t)
	ctx := t.Context()
	if err := store.Put(ctx, "new/deep/doc.csv", []byte("a,b\n")); err != nil {
		t.Fatal(err)
	}
	obj, err := store.Get(ctx, "new/deep/doc.csv", 0)
	if err != nil || !bytes.Equal(obj.Data, []byte("a,b\n")) {
		t.Fatalf("Get after Put: %v %+v", err, obj)
	}
	st, err := os.Stat(filepath.Join(root, "new", "deep", "doc.csv"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", st, err)
	}
	// Writing through a link that leaves the root is refused.
	if err := store.Put(ctx, "outdir/planted.csv", []byte("x")); !errors.Is(err, documents.ErrInvalidKey) {
		t.Fatalf("Put through an escaping link = %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "outside", "planted.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file planted outside the root: %v", err)
	}
	if err := store.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	ctx := t.Context()
	tests := []struct {
		url      string
		ok       bool
		location string
		dir      string // where a file store must have created its directory
	}{
		{url: "file://./data/documents", ok: true, location: "file", dir: filepath.Join(work, "data", "documents")},
		{url: "file://rel", ok: true, location: "file", dir: filepath.Join(work, "rel")},
		{url: "file://" + filepath.Join(work, "abs"), ok: true, location: "file", dir: filepath.Join(work, "abs")},
		{url: "file://with%20pct", ok: true, location: "file", dir: filepath.Join(work, "with%20pct")}, // not URL-decoded
		{url: "file://"},
		{url: "s3://"},
		{url: "s3:///prefix"},
		{url: "s3://Bad_Bucket"},
		{url: "s3://ab"},
		{url: "s3://bucket/../x"},
		{url: "s3://bucket//x"},
		{url: "ftp://x"},
		{url: "./data"},
		{url: "FILE://x"},
	}
	for _, tc := range tests {
		store, err := documents.Open(ctx, tc.url)
		if !tc.ok {
			if err == nil {
				t.Errorf("Open(%q) accepted", tc.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%q) = %v", tc.url, err)
			continue
		}
		if store.Location() != tc.location || store.Bucket() != "" {
			t.Errorf("Open(%q): location %q bucket %q", tc.url, store.Location(), store.Bucket())
		}
		if st, err := os.Stat(tc.dir); err != nil || !st.IsDir() {
			t.Errorf("Open(%q) did not create %s: %v", tc.url, tc.dir, err)
		}
	}
	if _, err := documents.Open(ctx, "file://x", documents.Options{}, documents.Options{}); err == nil {
		t.Error("two Options accepted")
	}
}

// FuzzCheckKey: whatever CheckKey accepts is a clean, local, relative path,
// and stays one once percent-decoded.
func FuzzCheckKey(f *testing.F) {
	for _, k := range []string{"a.pdf", "in/a.csv", "../x", "%2e%2e/x", "a%20b", "100%.csv", "a//b", `a\b`, "C:x"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if documents.CheckKey(key) != nil {
			return
		}
		for k := key; ; {
			if !filepath.IsLocal(k) || path.Clean(k) != k || strings.ContainsAny(k, "\\\x00") {
				t.Fatalf("CheckKey accepted %q (form %q)", key, k)
			}
			dec, err := url.PathUnescape(k)
			if err != nil || dec == k {
				break
			}
			k = dec
		}
	})
}
