package binding

import "context"

// SetAfterLookup makes f run between a key's lookup and the read of its
// state (nil: nothing), to interleave a refresh there.
func SetAfterLookup(k *KeySet, f func()) { k.afterLookup = f }

// RefreshNow fetches the JWKS as a background refresh does.
func RefreshNow(ctx context.Context, k *KeySet) error { return k.shared(ctx, nil) }
