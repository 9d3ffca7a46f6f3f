// Package syncbuf is a bytes.Buffer safe for concurrent writers, for tests
// that collect a server's log or a process's output.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes from several goroutines. The zero value is ready
// and keeps everything; with Max > 0 it keeps only the last Max bytes (a
// chatty process's tail, for a failure message).
type Buffer struct {
	Max int

	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	if extra := s.b.Len() - s.Max; s.Max > 0 && extra > 0 {
		s.b.Next(extra)
	}
	return len(p), nil
}

// String returns what was written so far ("" for a nil Buffer).
func (s *Buffer) String() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
