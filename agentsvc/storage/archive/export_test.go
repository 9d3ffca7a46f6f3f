package archive

import (
	"database/sql"
	"time"
)

// SetClock replaces the clock of a SQLite store (ordering tests).
func SetClock(s Store, now func() time.Time) { s.(*SQLite).now = now }

// DB exposes the pool of a SQLite store (pragma and failure-injection tests).
func DB(s Store) *sql.DB { return s.(*SQLite).db }
