package certload

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors that callers and tests branch on. Every error returned by this
// package wraps one of these with the origin of the material (a path, a
// secret id or a variable name), never its contents.
var (
	ErrNoCertificate = errors.New("certload: no certificate found")
	ErrNoKey         = errors.New("certload: no private key found")
	ErrEncryptedKey  = errors.New("certload: encrypted private keys are not supported")
	ErrKeyMismatch   = errors.New("certload: private key does not match the certificate")
	ErrExpired       = errors.New("certload: certificate has expired")
	ErrNotYetValid   = errors.New("certload: certificate is not valid yet")
	ErrUntrusted     = errors.New("certload: certificate is not signed by the CA")
	ErrWrongUsage    = errors.New("certload: certificate extended key usage does not fit its use")
	ErrNoCA          = errors.New("certload: no CA certificate found")
	ErrNotCA         = errors.New("certload: CA bundle holds a certificate that is not a CA")
)

// Usage says what a certificate is for, so that validation can check its
// extended key usages.
type Usage int

const (
	// UsageServerAndClient: an agent serves and calls (serverAuth + clientAuth).
	UsageServerAndClient Usage = iota
	// UsageClient: the Lambda only calls (clientAuth).
	UsageClient
	// UsageServer: only serves (serverAuth).
	UsageServer
)

func (u Usage) extKeyUsages() []x509.ExtKeyUsage {
	switch u {
	case UsageClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case UsageServer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	default:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
}

// Origin names where each part of a bundle came from, for error messages.
type Origin struct {
	Cert, Key, CA string
}

// Bundle is one validated identity: the leaf (with its chain) and key, and
// the CA certificates that peers must chain to. A Bundle is immutable.
type Bundle struct {
	// Certificate is ready for tls.Config; Certificate.Leaf is set.
	Certificate tls.Certificate
	// Roots holds every CA certificate of the bundle (several during a CA
	// rotation overlap).
	Roots *x509.CertPool
	// CACerts are the same CA certificates, parsed.
	CACerts []*x509.Certificate
	// Origin names where the material came from.
	Origin Origin

	// signed remembers which peer leaves CACerts signed (CheckPeer).
	signed *signedMemo
}

// Leaf returns the bundle's leaf certificate.
func (b *Bundle) Leaf() *x509.Certificate { return b.Certificate.Leaf }

// Parse builds and validates a Bundle from PEM contents. now is the instant
// the validity window is checked against (time.Now in production).
func Parse(certPEM, keyPEM, caPEM []byte, origin Origin, usage Usage, now time.Time) (*Bundle, error) {
	cas, err := ParseCAs(caPEM, origin.CA)
	if err != nil {
		return nil, err
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w in %s: %v", ErrNoCertificate, origin.Cert, err)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoCertificate, origin.Cert)
	}
	keyDER, err := privateKeyBlock(keyPEM, origin.Key)
	if err != nil {
		return nil, err
	}
	var certPEMOnly bytes.Buffer
	for _, c := range chain {
		_ = pem.Encode(&certPEMOnly, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	// tls.X509KeyPair accepts PKCS#8, PKCS#1 and SEC1 keys and checks that the
	// key matches the leaf.
	pair, err := tls.X509KeyPair(certPEMOnly.Bytes(), pem.EncodeToMemory(keyDER))
	if err != nil {
		if isKeyParseError(err) {
			return nil, fmt.Errorf("%w in %s", ErrNoKey, origin.Key)
		}
		return nil, fmt.Errorf("%w (%s, %s)", ErrKeyMismatch, origin.Cert, origin.Key)
	}
	pair.Leaf = chain[0]
	b := &Bundle{Certificate: pair, CACerts: cas, Roots: poolOf(cas), Origin: origin, signed: newSignedMemo()}
	if err := b.verifyLeaf(chain[0], chain[1:], usage, now); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, origin.Cert)
	}
	return b, nil
}

// ParseCAs parses a CA bundle of one or more CA certificates.
func ParseCAs(caPEM []byte, origin string) ([]*x509.Certificate, error) {
	cas, err := parseCertificates(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%w in %s: %v", ErrNoCA, origin, err)
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoCA, origin)
	}
	for _, ca := range cas {
		if !ca.IsCA || !ca.BasicConstraintsValid {
			return nil, fmt.Errorf("%w (%s)", ErrNotCA, origin)
		}
	}
	return cas, nil
}

// verifyLeaf checks the validity window, the chain to the CA and every
// extended key usage the role needs.
func (b *Bundle) verifyLeaf(leaf *x509.Certificate, intermediates []*x509.Certificate, usage Usage, now time.Time) error {
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("%w: valid from %s", ErrNotYetValid, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("%w: expired %s", ErrExpired, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	for _, eku := range usage.extKeyUsages() {
		if err := VerifyChain(leaf, intermediates, b.Roots, eku, now); err != nil {
			return err
		}
	}
	return nil
}

// VerifyChain verifies that leaf chains to roots (through intermediates) and
// may be used for eku at now. It returns ErrUntrusted, ErrWrongUsage,
// ErrExpired or ErrNotYetValid, wrapped.
func VerifyChain(leaf *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, eku x509.ExtKeyUsage, now time.Time) error {
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{eku},
	})
	if err == nil {
		// x509 accepts a leaf without EKU, or with anyExtendedKeyUsage, for
		// any use; the contract asks for the usage itself.
		if !slices.Contains(leaf.ExtKeyUsage, eku) {
			return fmt.Errorf("%w: %s required", ErrWrongUsage, ekuName(eku))
		}
		return nil
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.IncompatibleUsage:
			return fmt.Errorf("%w: %s required", ErrWrongUsage, ekuName(eku))
		case x509.Expired:
			if now.Before(leaf.NotBefore) {
				return ErrNotYetValid
			}
			return ErrExpired
		}
	}
	return fmt.Errorf("%w: %v", ErrUntrusted, err)
}

func ekuName(eku x509.ExtKeyUsage) string {
	switch eku {
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	default:
		return fmt.Sprintf("eku %d", eku)
	}
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
