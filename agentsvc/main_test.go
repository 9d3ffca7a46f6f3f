package agentsvc_test

import (
	"os"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/sandbox"
)

// The extractor these tests run parses in workers that are this test
// binary re-executed: sandbox.Main must come first.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}
