package binding

import (
	"fmt"
	"testing"
	"time"
)

// TestCacheEvictsUnusableFirst: to make room the cache drops an entry
// that can no longer answer (expired, or its key withdrawn) before a live
// one, and among live ones the one closest to its expiry. With no more
// entries than the eviction samples, the choice is deterministic.
func TestCacheEvictsUnusableFirst(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		victim int // index of the entry that must go
		setup  func(i int, e *verified)
	}{
		{"expired", 3, func(i int, e *verified) {
			if i == 3 {
				e.exp = now.Add(-time.Second)
			}
		}},
		{"key withdrawn", 5, func(i int, e *verified) {
			if i == 5 {
				e.key.withdrawn.Store(true)
			}
		}},
		{"closest to expiry", 2, func(i int, e *verified) {
			if i == 2 {
				e.exp = now.Add(time.Minute)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const n = evictionSample
			c := newTokenCache(n, 1<<30)
			for i := range n {
				e := &verified{key: &keyState{}, exp: now.Add(time.Hour + time.Duration(i)*time.Second)}
				tc.setup(i, e)
				c.put(fmt.Sprintf("token-%d", i), e, now)
			}
			c.put("newcomer", &verified{key: &keyState{}, exp: now.Add(time.Hour)}, now)
			if entries, _ := c.stats(); entries != n {
				t.Fatalf("%d entries, want %d", entries, n)
			}
			for i := range n {
				_, kept := c.m[fmt.Sprintf("token-%d", i)]
				if kept == (i == tc.victim) {
					t.Fatalf("entry %d kept %v (victim %d)", i, kept, tc.victim)
				}
			}
		})
	}
}

// TestCacheReplaceAndRemove: putting a token again replaces its entry
// without counting it twice; removing an entry a concurrent request has
// replaced leaves the replacement.
func TestCacheReplaceAndRemove(t *testing.T) {
	now := time.Now()
	c := newTokenCache(10, 1<<20)
	a := &verified{key: &keyState{}, exp: now.Add(time.Hour)}
	b := &verified{key: &keyState{}, exp: now.Add(time.Hour)}
	c.put("tok", a, now)
	c.put("tok", b, now)
	if entries, bytes := c.stats(); entries != 1 || bytes != entryCost(3) {
		t.Fatalf("%d entries, %d bytes", entries, bytes)
	}
	c.remove("tok", a)
	if c.get("tok") != b {
		t.Fatal("removing the replaced entry dropped its replacement")
	}
	c.remove("tok", b)
	if entries, bytes := c.stats(); entries != 0 || bytes != 0 {
		t.Fatalf("%d entries, %d bytes after removal", entries, bytes)
	}
}
