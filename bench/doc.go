// Package bench measures the costs the design pays for its protections, on
// loopback, as ratios taken side by side in one run so that the machine's
// noise cancels: the authenticated path against the same server's
// unauthenticated one, a cached token against a first sight, a resumed
// handshake against a full one, a batch against a single document, and our
// authenticated path against nginx serving a static body over mTLS.
//
// Some rows run the real agent (cmd/agent, built by the run) as processes
// of their own, loaded from another process (`bench load`): the agent's CPU
// per request with the token check and without (a bench build,
// -tags benchauthbypass), against a hand-written check, its memory under a
// paced load, and documents through the whole pipeline of four agents.
//
// Nothing here asserts a figure. The tests only check that every
// measurement runs and measures what it says (short mode); `make bench`
// (go run ./bench/cmd/bench) runs them at full length and writes
// bench/results/results.md and results.json.
package bench
