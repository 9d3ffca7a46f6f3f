package certload

// Polls returns how many polls w has completed.
func Polls(w *CRLWatcher) int64 { return w.polls.Load() }
