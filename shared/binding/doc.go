// Package binding verifies that a bearer JWT was issued to the client
// certificate presented on the same TLS connection (RFC 8705
// certificate-bound access tokens, the `cnf.x5t#S256` claim).
//
// A Verifier applies the whole chain (docs/contract.md, Authentication) in
// order: the token
// is read from the Authorization header only; its header is checked (allowed
// algorithms, a `kid`, no `jku`/`x5u`/`jwk`/`x5c`, no `crit`); its signature
// is checked against keys from the identity provider's JWKS (KeySet, built on
// MicahParks/keyfunc and jwkset, with the refresh policy of the design); its
// claims are checked (`iss`, `aud`, `exp` required, `nbf`/`iat` at most 60 s
// ahead); finally its `cnf.x5t#S256` is compared in constant time with the
// thumbprint of the presented certificate. Middleware wraps it for net/http;
// it answers nothing itself: the caller (the agent server) says how a refused
// request is answered.
package binding
