package certgen

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// DefaultCRLDays is how long a CRL certgen signs stays current (its
// nextUpdate): re-sign before then with `certgen crl` (any revoke re-signs
// too). 30 days leaves room for a monthly job while bounding how long a
// stolen, older CRL could be replayed to a verifier that checks freshness.
const DefaultCRLDays = 30

// Reasons maps the revocation reasons Revoke accepts to their RFC 5280
// codes (section 5.3.1); the names are those of the RFC and of
// `openssl ca -crl_reason`. Codes that do not fit a leaf (cACompromise) or
// that are not final (certificateHold) are left out.
var Reasons = map[string]int{
	"unspecified":          0,
	"keyCompromise":        1,
	"affiliationChanged":   3,
	"superseded":           4,
	"cessationOfOperation": 5,
	"privilegeWithdrawn":   9,
}

// RevokeOptions say which leaf Revoke adds to its CA's CRL.
type RevokeOptions struct {
	Dir    string
	Name   string   // an agent whose current certificate is revoked, or
	Serial *big.Int // a serial certgen issued (agents/ or ca/issued/)
	Reason int      // one of Reasons; 0 omits the reason code
	Days   int      // nextUpdate of the re-signed CRL (default DefaultCRLDays)
	Now    time.Time
	Out    func(format string, args ...any)
}

// Revoke adds a leaf to the CRL of the CA that issued it (the current or
// the next CA) and re-signs that CRL with the next CRL number; the other
// CA's CRL is kept as it is. Revoking a revoked certificate changes
// nothing. The key of the issuing CA is needed; the other's is not.
func Revoke(o RevokeOptions) error {
	if (o.Name == "") == (o.Serial == nil) {
		return errors.New("certgen: revoke needs an agent name or a serial, not both")
	}
	if !validReason(o.Reason) {
		return fmt.Errorf("certgen: unsupported revocation reason %d", o.Reason)
	}
	o.Now, o.Days, o.Out = orNow(o.Now), orDays(o.Days), orOut(o.Out)
	cur, next, err := loadCAs(o.Dir)
	if err != nil {
		return err
	}
	cas := chain(cur, next)
	var target *x509.Certificate
	var what string
	if o.Name != "" {
		certPath, _ := LeafPaths(o.Dir, o.Name)
		if target, err = readLeaf(certPath); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: no certificate for agent %q (%s)", ErrUnknownCertificate, o.Name, certPath)
		} else if err != nil {
			return err
		}
		what = certPath
	} else if target, what, err = findSerial(o.Dir, o.Serial); err != nil {
		return err
	}
	issuer := issuerOf(target, cas)
	if issuer == nil {
		return fmt.Errorf("%w: %s (serial %s) is issued by %q, not by %s; a retired CA's certificates are refused by the bundle already",
			ErrNotIssued, what, SerialHex(target.SerialNumber), target.Issuer, names(cas))
	}
	revs, err := readCRLs(o.Dir, cas)
	if err != nil {
		return err
	}
	old := revs.For(issuer.cert)
	if old != nil && old.Revoked(target.SerialNumber) {
		for _, e := range old.List.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(target.SerialNumber) == 0 {
				o.Out("unchanged %s (serial %s of %s already revoked on %s)", CRLPath(o.Dir), SerialHex(target.SerialNumber), what, e.RevocationTime.UTC().Format(time.RFC3339))
			}
		}
		return nil
	}
	key, err := issuer.signer()
	if err != nil {
		return fmt.Errorf("%w (needed to sign the CRL of %s)", err, caLabel(issuer.cert))
	}
	var entries []x509.RevocationListEntry
	number := big.NewInt(1)
	if old != nil {
		entries = keptEntries(old.List)
		number.Add(old.List.Number, number)
	}
	entries = append(entries, x509.RevocationListEntry{SerialNumber: target.SerialNumber, RevocationTime: o.Now, ReasonCode: o.Reason})
	der, err := signCRL(issuer, key, number, entries, o.Now, o.Days)
	if err != nil {
		return err
	}
	if err := writeCRLs(o.Dir, cas, revs, map[*authority][]byte{issuer: der}); err != nil {
		return err
	}
	o.Out("revoked   serial %s (%s, issued by %s)", SerialHex(target.SerialNumber), what, caLabel(issuer.cert))
	o.Out("updated   %s (CRL %s of %s, next update %s)", CRLPath(o.Dir), number, caLabel(issuer.cert), o.Now.AddDate(0, 0, o.Days).UTC().Format(time.RFC3339))
	return nil
}

// CRLOptions say how RefreshCRL re-signs the CRL file.
type CRLOptions struct {
	Dir  string
	Days int // nextUpdate (default DefaultCRLDays)
	Now  time.Time
	Out  func(format string, args ...any)
}

// RefreshCRL re-signs every CRL of the file with a fresh thisUpdate and
// nextUpdate and the next CRL number, keeping its entries; without a CRL
// file it creates an empty CRL of the current CA, so that a deployment can
// wire the CRL (MTLS_CRL_SECRET_ID, MTLS_CRL_PATH) before anything is revoked. It never adds a CRL for the
// next CA: an agent that does not trust that CA yet would refuse the file.
func RefreshCRL(o CRLOptions) error {
	o.Now, o.Days, o.Out = orNow(o.Now), orDays(o.Days), orOut(o.Out)
	cur, next, err := loadCAs(o.Dir)
	if err != nil {
		return err
	}
	cas := chain(cur, next)
	revs, err := readCRLs(o.Dir, cas)
	if err != nil {
		return err
	}
	signed := map[*authority][]byte{}
	for _, a := range cas {
		old := revs.For(a.cert)
		if old == nil && (revs != nil || a != cur) {
			continue
		}
		key, err := a.signer()
		if err != nil {
			return fmt.Errorf("%w (needed to sign the CRL of %s)", err, caLabel(a.cert))
		}
		number, entries := big.NewInt(1), []x509.RevocationListEntry(nil)
		if old != nil {
			number.Add(old.List.Number, number)
			entries = keptEntries(old.List)
		}
		if signed[a], err = signCRL(a, key, number, entries, o.Now, o.Days); err != nil {
			return err
		}
		o.Out("signed    CRL %s of %s (%d revoked, next update %s)", number, caLabel(a.cert), len(entries), o.Now.AddDate(0, 0, o.Days).UTC().Format(time.RFC3339))
	}
	if err := writeCRLs(o.Dir, cas, revs, signed); err != nil {
		return err
	}
	o.Out("updated   %s", CRLPath(o.Dir))
	return nil
}

// resetCRL replaces an existing CRL file with an empty CRL of a new CA
// (--force-ca): the old lists are signed by a CA nobody trusts any more,
// and agents refuse a file holding one.
func resetCRL(dir string, a *authority, key crypto.Signer, now time.Time, out func(string, ...any)) error {
	if _, err := os.Stat(CRLPath(dir)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	der, err := signCRL(a, key, big.NewInt(1), nil, now, DefaultCRLDays)
	if err != nil {
		return err
	}
	if err := writeAtomic(CRLPath(dir), pemCRL(der), 0o644); err != nil {
		return err
	}
	out("%-9s %s", "updated", CRLPath(dir))
	return nil
}

// readCRLs parses and verifies the CRL file against cas, as an agent would;
// nil when there is none.
func readCRLs(dir string, cas []*authority) (*certload.Revocations, error) {
	path := CRLPath(dir)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	revs, err := certload.ParseCRLs(data, path, certsOf(cas))
	if err != nil {
		return nil, fmt.Errorf("%w: %w (agents would refuse it too; fix or remove it)", ErrBadCRL, err)
	}
	return revs, nil
}

// writeCRLs writes one CRL per CA of cas, in bundle order: the freshly
// signed one when there is one, else the one revs holds, else none.
func writeCRLs(dir string, cas []*authority, revs *certload.Revocations, signed map[*authority][]byte) error {
	var buf bytes.Buffer
	for _, a := range cas {
		if der, ok := signed[a]; ok {
			buf.Write(pemCRL(der))
		} else if old := revs.For(a.cert); old != nil {
			buf.Write(pemCRL(old.List.Raw))
		}
	}
	return writeAtomic(CRLPath(dir), buf.Bytes(), 0o644)
}

func signCRL(a *authority, key crypto.Signer, number *big.Int, entries []x509.RevocationListEntry, now time.Time, days int) ([]byte, error) {
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                now.AddDate(0, 0, days),
		RevokedCertificateEntries: entries,
	}, a.cert, key)
}

// keptEntries copies what a re-signed CRL carries over: serial, time and
// reason of each revocation.
func keptEntries(l *x509.RevocationList) []x509.RevocationListEntry {
	out := make([]x509.RevocationListEntry, 0, len(l.RevokedCertificateEntries)+1)
	for _, e := range l.RevokedCertificateEntries {
		out = append(out, x509.RevocationListEntry{SerialNumber: e.SerialNumber, RevocationTime: e.RevocationTime, ReasonCode: e.ReasonCode})
	}
	return out
}

func pemCRL(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certload.PEMTypeCRL, Bytes: der})
}

// findSerial looks for a certificate with serial among the agents' current
// certificates, then among every leaf certgen issued.
func findSerial(dir string, serial *big.Int) (*x509.Certificate, string, error) {
	leaves, err := listLeaves(dir)
	if err != nil {
		return nil, "", err
	}
	for _, l := range leaves {
		if l.cert != nil && l.cert.SerialNumber.Cmp(serial) == 0 {
			return l.cert, l.path, nil
		}
	}
	path := filepath.Join(IssuedDir(dir), SerialHex(serial)+".pem")
	c, err := readLeaf(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%w: no certificate with serial %s under %s or %s", ErrUnknownCertificate, SerialHex(serial), filepath.Join(dir, "agents"), IssuedDir(dir))
	}
	if err != nil {
		return nil, "", err
	}
	if c.SerialNumber.Cmp(serial) != 0 {
		return nil, "", fmt.Errorf("%s: serial %s, not %s", path, SerialHex(c.SerialNumber), SerialHex(serial))
	}
	return c, path, nil
}

// readLeaf parses the first certificate of a PEM file.
func readLeaf(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, fmt.Errorf("%s: no PEM certificate", path)
		}
		if block.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: malformed certificate", path)
			}
			return c, nil
		}
	}
}

// issuerOf returns the CA of cas whose key signed cert, or nil.
func issuerOf(cert *x509.Certificate, cas []*authority) *authority {
	for _, a := range cas {
		if bytes.Equal(cert.RawIssuer, a.cert.RawSubject) && cert.CheckSignatureFrom(a.cert) == nil {
			return a
		}
	}
	return nil
}

func names(cas []*authority) string {
	q := make([]string, len(cas))
	for i, a := range cas {
		q[i] = caLabel(a.cert)
	}
	return strings.Join(q, " or ")
}

func validReason(r int) bool {
	for _, v := range Reasons {
		if v == r {
			return true
		}
	}
	return false
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func orDays(d int) int {
	if d == 0 {
		return DefaultCRLDays
	}
	return d
}

func orOut(out func(string, ...any)) func(string, ...any) {
	if out == nil {
		return func(string, ...any) {}
	}
	return out
}
