package binding

import (
	"sync"
	"time"
)

// Defaults of the verified-token cache (Config.CacheSize, Config.CacheBytes).
const (
	DefaultCacheSize  = 10000
	DefaultCacheBytes = 8 << 20
)

// entryOverhead is what one cached verification costs besides the text of
// its token, rounded up: the map slot and the key's header, the verified
// record, the decoded Claims with their pointers and the cnf copy.
const entryOverhead = 512

// entryCost is what the cache accounts for a token of n bytes: its text (the
// key), and at most as much again for its decoded claims (they come from
// the payload, three quarters of the token at most, and a JSON string
// decodes to no more bytes than it has), plus entryOverhead. It bounds the
// memory the entry holds from above.
func entryCost(n int) int { return 2*n + entryOverhead }

// evictionSample is how many entries an eviction looks at.
const evictionSample = 8

// tokenCache holds verified tokens by their exact text. A hit is one map
// lookup under a read lock, which concurrent requests share: no list is
// reordered and nothing is written. It holds at most maxEntries entries and
// maxBytes accounted bytes (entryCost); to make room, an insertion evicts,
// among a few entries picked at random (Go randomises where a map's
// iteration starts), one that can no longer be used (expired, or its key
// withdrawn) if it finds one, else the one closest to its expiry. Keying by
// the token itself rather than a hash of it is what makes a hit cheap: a
// hash of a 900-byte token costs more than the rest of the hit.
type tokenCache struct {
	maxEntries, maxBytes int

	mu    sync.RWMutex
	m     map[string]*verified
	bytes int
}

func newTokenCache(maxEntries, maxBytes int) *tokenCache {
	return &tokenCache{maxEntries: maxEntries, maxBytes: maxBytes, m: make(map[string]*verified)}
}

// get returns the verification cached for raw, or nil.
func (c *tokenCache) get(raw string) *verified {
	c.mu.RLock()
	e := c.m[raw]
	c.mu.RUnlock()
	return e
}

// put caches e for raw, evicting as needed. A token too large to fit the
// byte budget alone is not cached (it is verified on every request). raw
// must not share memory with anything larger (the caller clones it).
func (c *tokenCache) put(raw string, e *verified, now time.Time) {
	cost := entryCost(len(raw))
	if cost > c.maxBytes {
		return
	}
	e.cost = cost
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[raw]; ok {
		delete(c.m, raw)
		c.bytes -= old.cost
	}
	for len(c.m) > 0 && (len(c.m) >= c.maxEntries || c.bytes+cost > c.maxBytes) {
		c.evictOne(now)
	}
	c.m[raw] = e
	c.bytes += cost
}

// remove drops raw's entry if it is still e (a concurrent request may have
// replaced it with a fresh verification).
func (c *tokenCache) remove(raw string, e *verified) {
	c.mu.Lock()
	if c.m[raw] == e {
		delete(c.m, raw)
		c.bytes -= e.cost
	}
	c.mu.Unlock()
}

// evictOne removes one entry (c.mu held, c.m not empty).
func (c *tokenCache) evictOne(now time.Time) {
	var victim string
	var ve *verified
	n := 0
	for k, e := range c.m {
		if !e.usable(now) {
			victim, ve = k, e
			break
		}
		if ve == nil || e.exp.Before(ve.exp) {
			victim, ve = k, e
		}
		if n++; n == evictionSample {
			break
		}
	}
	delete(c.m, victim)
	c.bytes -= ve.cost
}

// stats reports the entries and accounted bytes (tests).
func (c *tokenCache) stats() (entries, bytes int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m), c.bytes
}
