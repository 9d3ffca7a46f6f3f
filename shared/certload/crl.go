package certload

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// MaxCRLBytes bounds the PEM data ParseCRLs accepts. certgen's CRLs grow by
// about 50 bytes per revoked certificate, so this leaves room for some
// twenty thousand revocations while keeping a hostile file or secret from
// bloating the process.
const MaxCRLBytes = 1 << 20

// maxCRLs bounds the number of CRL blocks in one file: certgen writes one
// per CA of the bundle, two during a CA rotation.
const maxCRLs = 16

// PEMTypeCRL is the PEM block type of a CRL, as openssl and certgen write it.
const PEMTypeCRL = "X509 CRL"

// Errors that callers branch on when a CRL is refused. Messages name the
// origin (a path, a secret id or a variable name) and the issuer's name,
// never the contents.
var (
	ErrNoCRL        = errors.New("certload: no CRL found")
	ErrMalformedCRL = errors.New("certload: malformed CRL")
	ErrUntrustedCRL = errors.New("certload: CRL is not signed by a trusted CA")
)

// ErrRevoked: the certificate is on the CRL of the CA that issued it.
var ErrRevoked = errors.New("certload: certificate has been revoked")

var (
	oidExtAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtCRLNumber      = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidExtReasonCode     = asn1.ObjectIdentifier{2, 5, 29, 21}
)

// CRL is one certificate revocation list whose signature has been verified
// against a trusted CA. It must not be modified.
type CRL struct {
	// Issuer is the trusted CA whose key signed the list.
	Issuer *x509.Certificate
	// List is the parsed list: Number, ThisUpdate, NextUpdate and the
	// revoked entries (serial, revocation time, reason).
	List *x509.RevocationList
	// revoked holds the serials that fit a serialKey (every serial RFC
	// 5280 allows, and more); long holds the others, by hex text.
	revoked map[serialKey]struct{}
	long    map[string]struct{}
}

// Revoked reports whether serial is on the list.
func (c *CRL) Revoked(serial *big.Int) bool {
	if k, ok := keyOf(serial); ok {
		_, found := c.revoked[k]
		return found
	}
	_, found := c.long[serial.Text(16)]
	return found
}

// Len returns the number of revoked certificates on the list.
func (c *CRL) Len() int { return len(c.revoked) + len(c.long) }

// covers reports whether this list speaks for cert: the CA that signed the
// list is the one whose name cert names as its issuer, and, when both carry
// key identifiers, whose key identifier cert names as its authority key.
// Every CA of a rotation has the same name (certgen keeps it), so the key
// identifier is what tells them apart; without one, both same-named CAs'
// lists apply, which can only refuse more.
func (c *CRL) covers(cert *x509.Certificate) bool {
	if !bytes.Equal(c.Issuer.RawSubject, cert.RawIssuer) {
		return false
	}
	return len(cert.AuthorityKeyId) == 0 || len(c.Issuer.SubjectKeyId) == 0 || bytes.Equal(cert.AuthorityKeyId, c.Issuer.SubjectKeyId)
}

// Revocations is the set of revoked certificates of a CRL file: at most one
// verified CRL per trusted CA. A nil *Revocations revokes nothing (no CRL is
// configured). It is immutable and safe for concurrent use.
type Revocations struct {
	crls []*CRL
}

// CRLs returns the verified CRLs, in file order.
func (r *Revocations) CRLs() []*CRL {
	if r == nil {
		return nil
	}
	return append([]*CRL(nil), r.crls...)
}

// For returns the CRL issued by ca, or nil when the file holds none for it.
func (r *Revocations) For(ca *x509.Certificate) *CRL {
	if r == nil {
		return nil
	}
	for _, c := range r.crls {
		if c.Issuer.Equal(ca) {
			return c
		}
	}
	return nil
}

// IsRevoked reports whether cert is on the CRL of its issuer. cert must
// already be verified against the CAs the Revocations was parsed with. The
// issuer's list is found by name and authority key identifier (see
// CRL.covers), so of two CAs that share a name only the one that signed
// cert is asked. The cost is a few byte comparisons and one map lookup per
// CRL, without allocating: cheap enough for every request of a connection.
func (r *Revocations) IsRevoked(cert *x509.Certificate) bool {
	if r == nil || cert == nil || cert.SerialNumber == nil {
		return false
	}
	for _, c := range r.crls {
		if c.covers(cert) && c.Revoked(cert.SerialNumber) {
			return true
		}
	}
	return false
}

// NextUpdate returns the earliest nextUpdate of the CRLs (zero when none
// carries one): after it the issuer promised a fresher list, so a caller
// may warn that the list is stale. ParseCRLs does not refuse a stale CRL:
// it is still the newest revocation information there is, and refusing it
// would accept the very certificates it revokes.
func (r *Revocations) NextUpdate() time.Time {
	var next time.Time
	for _, c := range r.CRLs() {
		if nu := c.List.NextUpdate; !nu.IsZero() && (next.IsZero() || nu.Before(next)) {
			next = nu
		}
	}
	return next
}

// ParseCRLs parses crlPEM, one or more "X509 CRL" PEM blocks, and verifies
// each list's signature against the trusted CA that bears its issuer name.
// It fails closed: the whole file is refused (ErrUntrustedCRL) when one list
// is not signed by any of cas, and (ErrMalformedCRL) when data exceeds
// MaxCRLBytes, a block is not a CRL, a list carries a critical extension
// this package does not understand (a delta or partial CRL would be
// misread as complete), or two lists come from the same CA. A file with
// no CRL at all is ErrNoCRL. origin names the source in error messages.
// Time is not checked: see Revocations.NextUpdate.
func ParseCRLs(crlPEM []byte, origin string, cas []*x509.Certificate) (*Revocations, error) {
	if len(crlPEM) > MaxCRLBytes {
		return nil, fmt.Errorf("%w in %s: larger than %d bytes", ErrMalformedCRL, origin, MaxCRLBytes)
	}
	r := &Revocations{}
	rest := crlPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != PEMTypeCRL {
			return nil, fmt.Errorf("%w in %s: unexpected PEM block %q", ErrMalformedCRL, origin, block.Type)
		}
		if len(r.crls) == maxCRLs {
			return nil, fmt.Errorf("%w in %s: more than %d CRLs", ErrMalformedCRL, origin, maxCRLs)
		}
		c, err := parseCRL(block.Bytes, origin, len(r.crls)+1, cas)
		if err != nil {
			return nil, err
		}
		for _, prev := range r.crls {
			if prev.Issuer.Equal(c.Issuer) {
				return nil, fmt.Errorf("%w in %s: two CRLs of %s", ErrMalformedCRL, origin, c.Issuer.Subject)
			}
		}
		r.crls = append(r.crls, c)
	}
	if len(r.crls) == 0 {
		if strings.TrimSpace(string(rest)) != "" {
			return nil, fmt.Errorf("%w in %s: not PEM", ErrNoCRL, origin)
		}
		return nil, fmt.Errorf("%w in %s", ErrNoCRL, origin)
	}
	return r, nil
}

// parseCRL parses and verifies the n-th CRL of origin.
func parseCRL(der []byte, origin string, n int, cas []*x509.Certificate) (*CRL, error) {
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w in %s (CRL %d): %v", ErrMalformedCRL, origin, n, err)
	}
	var issuer *x509.Certificate
	for _, ca := range cas {
		if bytes.Equal(ca.RawSubject, list.RawIssuer) && list.CheckSignatureFrom(ca) == nil {
			issuer = ca
			break
		}
	}
	if issuer == nil {
		return nil, fmt.Errorf("%w: %s (CRL %d) is issued by %s", ErrUntrustedCRL, origin, n, issuerName(list))
	}
	for _, ext := range list.Extensions {
		if ext.Critical && !ext.Id.Equal(oidExtAuthorityKeyID) && !ext.Id.Equal(oidExtCRLNumber) {
			return nil, fmt.Errorf("%w in %s (CRL %d): unsupported critical extension %s", ErrMalformedCRL, origin, n, ext.Id)
		}
	}
	c := &CRL{Issuer: issuer, List: list, revoked: make(map[serialKey]struct{}, len(list.RevokedCertificateEntries))}
	for _, e := range list.RevokedCertificateEntries {
		for _, ext := range e.Extensions {
			// A critical entry extension such as certificateIssuer changes
			// whose certificate the serial names.
			if ext.Critical && !ext.Id.Equal(oidExtReasonCode) {
				return nil, fmt.Errorf("%w in %s (CRL %d): unsupported critical entry extension %s", ErrMalformedCRL, origin, n, ext.Id)
			}
		}
		if e.SerialNumber == nil {
			continue
		}
		if k, ok := keyOf(e.SerialNumber); ok {
			c.revoked[k] = struct{}{}
		} else {
			if c.long == nil {
				c.long = map[string]struct{}{}
			}
			c.long[e.SerialNumber.Text(16)] = struct{}{}
		}
	}
	return c, nil
}

// issuerName is the CRL's issuer for a message: quoted and cut short,
// since an untrusted list's name is whatever its author wrote.
func issuerName(list *x509.RevocationList) string {
	s := list.Issuer.String()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strconv.Quote(s)
}

// maxKeyedSerial is the longest serial, in bytes, a serialKey holds:
// RFC 5280 allows 20 octets; Go's parsers accept more.
const maxKeyedSerial = 32

// serialKey is a serial as a comparable value, so that looking one up
// needs no allocation (big.Int.Text would allocate on every request).
type serialKey struct {
	neg bool
	abs [maxKeyedSerial]byte // big-endian, left-padded with zeros
}

// keyOf returns serial's key, or false when it is too long for one.
func keyOf(serial *big.Int) (serialKey, bool) {
	var k serialKey
	if serial == nil || serial.BitLen() > 8*maxKeyedSerial {
		return k, false
	}
	k.neg = serial.Sign() < 0
	serial.FillBytes(k.abs[:])
	return k, true
}
