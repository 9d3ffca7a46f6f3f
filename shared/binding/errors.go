package binding

import "errors"

// Sentinel errors; every error of a failed verification wraps one of them.
var (
	// ErrNoToken: no usable "Authorization: Bearer" header.
	ErrNoToken = errors.New("binding: missing bearer token")
	// ErrInvalidToken: the token is malformed, badly signed, expired, or
	// for another issuer or audience. The wrapped error says which.
	ErrInvalidToken = errors.New("binding: invalid token")
	// ErrUnknownKey: the token's kid is not in the JWKS, even after the
	// refresh this request was allowed to trigger. Wraps ErrInvalidToken.
	ErrUnknownKey = errors.New("binding: signing key not found")
	// ErrMalformedToken: the token's header names no algorithm. (jwt's
	// ErrTokenMalformed covers the other ways a token fails to parse.)
	ErrMalformedToken = errors.New("binding: token is malformed")
	// ErrHeaderRefused: the JWT header carries jku, x5u, jwk, x5c or crit,
	// or no kid. It is refused before any key is looked up.
	ErrHeaderRefused = errors.New("binding: token header refused")
	// ErrAlgNotAllowed: the token's algorithm is not allowed, or does not
	// fit the key its kid names (an RSA key for ES256, a JWK published for
	// another algorithm, an RSA key under 2048 bits).
	ErrAlgNotAllowed = errors.New("binding: token algorithm not allowed")
	// ErrNoClientCert: the request came without a client certificate.
	ErrNoClientCert = errors.New("binding: no client certificate on the connection")
	// ErrNoIdentity: the client certificate names no ca-a2a agent.
	ErrNoIdentity = errors.New("binding: client certificate carries no agent identity")
	// ErrNoConfirmation: the token carries no cnf.x5t#S256 and binding is required.
	ErrNoConfirmation = errors.New("binding: token has no certificate confirmation (cnf)")
	// ErrThumbprintMismatch: the token is bound to another certificate.
	ErrThumbprintMismatch = errors.New("binding: token is not bound to the presented certificate")
)
