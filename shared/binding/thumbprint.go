package binding

import (
	"crypto/subtle"
	"crypto/x509"
)

// Thumbprint returns the x5t#S256 of cert: base64url without padding of the
// SHA-256 of its DER encoding (RFC 8705 section 3.1). It is 43 characters.
func Thumbprint(cert *x509.Certificate) string {
	var t [thumbprintLen]byte
	thumbprint(&t, cert)
	return string(t[:])
}

// Cnf is the confirmation claim of a certificate-bound token.
type Cnf struct {
	X5tS256 string `json:"x5t#S256"`
}

// Confirmation returns the cnf claim that binds a token to cert.
func Confirmation(cert *x509.Certificate) Cnf { return Cnf{X5tS256: Thumbprint(cert)} }

// Bound reports, in constant time, whether cnf binds to cert.
func (c *Cnf) Bound(cert *x509.Certificate) bool {
	if c == nil || cert == nil || c.X5tS256 == "" {
		return false
	}
	var t [thumbprintLen]byte
	thumbprint(&t, cert)
	return subtle.ConstantTimeCompare([]byte(c.X5tS256), t[:]) == 1
}
