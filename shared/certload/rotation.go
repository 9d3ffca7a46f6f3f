package certload

import "sync"

// Rotation tells a holder of connections or tokens made with a Source's
// certificate when that certificate changed, so that it can drop them: a
// token bound to the old certificate, or a kept-alive connection presenting
// it, no longer matches. A Source publishes a new *Bundle only when the
// certificate changed, so the check is a pointer comparison, with no
// hashing on every call. The zero value is ready; it is safe for concurrent
// use.
type Rotation struct {
	mu   sync.Mutex
	last *Bundle
}

// Check returns src's current bundle and whether it differs from the one
// the previous Check saw (false on the first Check).
func (r *Rotation) Check(src Source) (b *Bundle, rotated bool) {
	b = src.Bundle()
	r.mu.Lock()
	defer r.mu.Unlock()
	rotated = r.last != nil && r.last != b
	r.last = b
	return b, rotated
}
