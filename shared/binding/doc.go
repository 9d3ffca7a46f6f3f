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
// thumbprint of the presented certificate. golang-jwt checks the signature
// and validates the claims; this package reads the compact serialization
// around them (parse.go), in golang-jwt's order and with its errors.
//
// A verified token is cached by its text (a bounded tokenCache) until its
// exp or until the key that signed it is withdrawn; the binding is compared
// on every request. ConnContext lets a server keep what the chain derives
// from a connection's certificate (thumbprint, identity) for the
// connection's life. Guard wraps the chain for net/http and hands the
// handler the caller's Auth; Middleware does the same through the request's
// context. Neither answers anything itself: the caller (the agent server)
// says how a refused request is answered.
package binding
