//go:build unix

package documents_test

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/storage/documents"
)

// A named pipe would block a reader forever; it is not a document.
func TestDirFIFO(t *testing.T) {
	store, root := newDir(t)
	if err := syscall.Mkfifo(filepath.Join(root, "pipe.csv"), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if _, err := store.Get(t.Context(), "pipe.csv", 0); !errors.Is(err, documents.ErrNotFound) {
		t.Fatalf("Get(fifo) = %v, want ErrNotFound", err)
	}
}
