// Package repo locates the repository root for tests that run its tools.
package repo

import (
	"os"
	"path/filepath"
	"testing"
)

// Root returns the directory holding the root go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && containsModule(data) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found")
		}
		dir = parent
	}
}

func containsModule(gomod []byte) bool {
	const want = "module github.com/ca-a2a/ca-a2a\n"
	return len(gomod) >= len(want) && string(gomod[:len(want)]) == want
}
