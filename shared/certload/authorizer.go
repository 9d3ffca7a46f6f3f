package certload

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// ErrUnauthorizedPeer: the peer is not the identity the caller expected.
var ErrUnauthorizedPeer = errors.New("certload: peer identity not authorized")

// errNoAuthorizer: a config was built without an authorizer; it refuses
// every peer rather than accept any.
var errNoAuthorizer = errors.New("certload: no authorizer configured; every peer is refused")

// Authorizer decides whether a verified peer may connect. leaf is the
// peer's certificate; it has already been verified against the CA. Which
// identities are acceptable is the caller's policy, not this package's (the
// agents' naming rule lives in agentapi).
type Authorizer func(leaf *x509.Certificate) error

// AuthorizeDNSName accepts a peer whose certificate is valid for the host
// name (x509 name matching), whatever address was dialed. It is the usual
// check for a server that is not an agent (the identity provider,
// OIDC_SERVER_NAME).
func AuthorizeDNSName(name string) Authorizer {
	return func(leaf *x509.Certificate) error {
		if err := leaf.VerifyHostname(name); err != nil {
			return fmt.Errorf("%w: certificate is not valid for %q", ErrUnauthorizedPeer, name)
		}
		return nil
	}
}

// authorize runs a, refusing when there is none.
func (a Authorizer) authorize(leaf *x509.Certificate) error {
	if a == nil {
		return errNoAuthorizer
	}
	return a(leaf)
}
