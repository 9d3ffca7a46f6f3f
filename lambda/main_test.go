package lambda_test

import (
	"os"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
)

// The extractor these tests run parses in workers that are this test
// binary re-executed: sandbox.Main must come first. The events test on
// PostgreSQL uses the binary's one throwaway cluster.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(pgtest.SharedMain(m).Run())
}
