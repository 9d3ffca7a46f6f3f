package archive

import (
	"database/sql"
	"time"
)

// SetClock replaces the clock of a store (ordering tests).
func SetClock(s Store, now func() time.Time) {
	switch s := s.(type) {
	case *SQLite:
		s.now = now
	case *Postgres:
		s.now = now
	default:
		panic("SetClock: not a store of this package")
	}
}

// DB exposes the pool of a SQLite store (pragma and failure-injection tests).
func DB(s Store) *sql.DB { return s.(*SQLite).db }

// SetRetry shortens the PostgreSQL store's patience for the tests of an
// unreachable database: the first attempt's bound, then the backoff's
// start and cap. It returns what restores the defaults. Not for parallel
// tests.
func SetRetry(first, base, maxDelay time.Duration) (restore func()) {
	f, b, m := firstAttemptTimeout, retryBase, retryMax
	firstAttemptTimeout, retryBase, retryMax = first, base, maxDelay
	return func() { firstAttemptTimeout, retryBase, retryMax = f, b, m }
}

// Ready reports whether a PostgreSQL store reached its database.
func Ready(s Store) bool { return s.(*Postgres).ready.Load() }
