package archive_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
)

// The PostgreSQL cases share one cluster per test binary, a database each.
func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.SharedMain(m)) }
