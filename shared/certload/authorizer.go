package certload

import (
	"crypto/x509"
	"errors"
)

// ErrUnauthorizedPeer: the peer is not the identity the caller expected.
var ErrUnauthorizedPeer = errors.New("certload: peer identity not authorized")

// Authorizer decides whether a verified peer may connect. leaf is the
// peer's certificate; it has already been verified against the CA.
type Authorizer func(leaf *x509.Certificate) error
