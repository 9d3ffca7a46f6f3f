package certload

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Domain is the DNS suffix of every agent identity: the agent called
// "extractor" presents a certificate whose only SAN is
// extractor.ca-a2a.local.
const Domain = "ca-a2a.local"

// ErrNoIdentity: the certificate carries no agent identity.
var ErrNoIdentity = errors.New("certload: certificate carries no ca-a2a identity")

// ErrUnauthorizedPeer: the peer is not the identity the caller expected.
var ErrUnauthorizedPeer = errors.New("certload: peer identity not authorized")

// DNSName returns the SAN an agent called name presents.
func DNSName(name string) string { return name + "." + Domain }

// Identity returns the agent name of cert: the label before ".ca-a2a.local"
// in its DNS SANs. A certificate with no such SAN, or with several different
// ones, has no identity: one certificate, one caller.
func Identity(cert *x509.Certificate) (string, error) {
	name := ""
	for _, dns := range cert.DNSNames {
		label, ok := strings.CutSuffix(strings.ToLower(dns), "."+Domain)
		if !ok || label == "" || strings.ContainsAny(label, ".*") {
			continue
		}
		if name != "" && name != label {
			return "", fmt.Errorf("%w: several agent names", ErrNoIdentity)
		}
		name = label
	}
	if name == "" {
		return "", ErrNoIdentity
	}
	return name, nil
}

// Authorizer decides whether a verified peer may connect. leaf is the
// peer's certificate; it has already been verified against the CA.
type Authorizer func(leaf *x509.Certificate) error

// AuthorizeAny accepts every CA-issued peer.
func AuthorizeAny() Authorizer { return func(*x509.Certificate) error { return nil } }

// AuthorizeAgent accepts only the named agents.
func AuthorizeAgent(names ...string) Authorizer {
	return func(leaf *x509.Certificate) error {
		id, err := Identity(leaf)
		if err != nil {
			return err
		}
		for _, n := range names {
			if id == n {
				return nil
			}
		}
		return fmt.Errorf("%w: %q", ErrUnauthorizedPeer, id)
	}
}
