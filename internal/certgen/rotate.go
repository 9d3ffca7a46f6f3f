package certgen

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RotateOptions say how RotateCA creates the next CA.
type RotateOptions struct {
	Dir     string
	KeyType string // "ecdsa" or "rsa"; default: the current CA's kind
	Now     time.Time
	Out     func(format string, args ...any)
}

// RotateCA starts a CA rotation: it creates the next CA in ca/next/ and
// writes the bundle as current + next.
//
// The next CA carries the current one's subject, byte for byte, and a new
// key (so a new subject key identifier). Keeping the name is what lets the
// identity provider keep pinning the issuer of client certificates by name
// (Keycloak's x509.casubjectdn, an exact DN comparison) across rotations.
// Verifiers tell the two CAs apart by key: Go and OpenSSL 3 pick the issuer
// whose subject key identifier equals the leaf's authority key identifier
// and check the signature, Java tries every trust anchor of that name, and
// certload matches CRLs by signature and key identifier, not by name. From then on Generate issues leaves from the
// next CA, and RetireCA finishes the rotation. It refuses to start a second
// rotation.
func RotateCA(o RotateOptions) error {
	o.Now, o.Out = orNow(o.Now), orOut(o.Out)
	cur, next, err := loadCAs(o.Dir)
	if err != nil {
		return err
	}
	if next != nil {
		return fmt.Errorf("%w: %s exists; issue the leaves from it with certgen --force, then finish with certgen retire-ca (or remove %s to abandon it)",
			ErrRotationInProgress, next.certPath, filepath.Dir(next.certPath))
	}
	if o.KeyType == "" {
		o.KeyType = keyKind(cur.cert)
	}
	der, key, err := newCA(cur.cert.RawSubject, o.KeyType, o.Now)
	if err != nil {
		return err
	}
	certPath, keyPath := NextCAPaths(o.Dir)
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return err
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	o.Out("created   %s (%s)", certPath, caLabel(cert))
	next = &authority{cert: cert, certPath: certPath, keyPath: keyPath}
	verb, err := writeBundle(o.Dir, chain(cur, next))
	if err != nil {
		return err
	}
	o.Out("%-9s %s (serial %s + serial %s)", verb, BundlePath(o.Dir), SerialHex(cur.cert.SerialNumber), SerialHex(cert.SerialNumber))
	return nil
}

// RetireOptions say how RetireCA finishes a rotation.
type RetireOptions struct {
	Dir string
	// Force retires the current CA even though some leaves under agents/
	// are still issued by it; they stop being trusted.
	Force bool
	Now   time.Time
	Out   func(format string, args ...any)
}

// RetireCA finishes a rotation: the next CA becomes the current one
// (ca/ca-cert.pem, ca/ca-key.pem), the bundle and the CRL file then hold
// only it, and the old CA's certificate and last CRL are kept in
// ca/retired/ under its serial while its key is destroyed. It refuses when
// there is no next CA, and, unless forced, when a leaf under agents/ is
// still issued by the old CA.
//
// Files are written in an order that keeps every intermediate state usable
// by an agent that re-reads them: the CRL file drops the old CA's list
// before the bundle drops the old CA (a CRL of a CA outside the bundle is
// refused).
func RetireCA(o RetireOptions) error {
	o.Now, o.Out = orNow(o.Now), orOut(o.Out)
	cur, next, err := loadCAs(o.Dir)
	if err != nil {
		return err
	}
	if next == nil {
		nextCert, _ := NextCAPaths(o.Dir)
		return fmt.Errorf("%w: %s does not exist; start one with certgen rotate-ca", ErrNoRotation, nextCert)
	}
	nextKeyPEM, err := checkedKeyPEM(next)
	if err != nil {
		return err
	}
	stale, err := leavesOf(o.Dir, cur)
	if err != nil {
		return err
	}
	if len(stale) > 0 && !o.Force {
		return fmt.Errorf("%w %s: %s; re-issue them with certgen --force --agents %s, or retire anyway with certgen retire-ca --force",
			ErrOldLeaves, caLabel(cur.cert), strings.Join(leafPaths(stale), ", "), strings.Join(leafNames(stale), " "))
	}
	revs, err := readCRLs(o.Dir, chain(cur, next))
	if err != nil {
		return err
	}

	retired := RetiredDir(o.Dir)
	if err := os.MkdirAll(retired, 0o700); err != nil {
		return err
	}
	prefix := filepath.Join(retired, SerialHex(cur.cert.SerialNumber))
	if err := writeAtomic(prefix+"-ca-cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cur.cert.Raw}), 0o644); err != nil {
		return err
	}
	o.Out("retired   %s (%s)", prefix+"-ca-cert.pem", caLabel(cur.cert))
	if old := revs.For(cur.cert); old != nil {
		if err := writeAtomic(prefix+"-crl.pem", pemCRL(old.List.Raw), 0o644); err != nil {
			return err
		}
		o.Out("retired   %s", prefix+"-crl.pem")
	}
	if revs != nil {
		// Keep a CRL file whenever there was one, so that publishing
		// replaces the old CA's list instead of leaving it in place.
		signed := map[*authority][]byte{}
		if revs.For(next.cert) == nil {
			key, err := next.signer()
			if err != nil {
				return err
			}
			if signed[next], err = signCRL(next, key, big.NewInt(1), nil, o.Now, DefaultCRLDays); err != nil {
				return err
			}
		}
		if err := writeCRLs(o.Dir, []*authority{next}, revs, signed); err != nil {
			return err
		}
		o.Out("updated   %s (the CRL of serial %s only)", CRLPath(o.Dir), SerialHex(next.cert.SerialNumber))
	}
	// Key first: a certificate is never visible without its key.
	certPath, keyPath := CAPaths(o.Dir)
	if err := writeAtomic(keyPath, nextKeyPEM, 0o600); err != nil {
		return err
	}
	if err := writeAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: next.cert.Raw}), 0o644); err != nil {
		return err
	}
	o.Out("promoted  %s (%s; the old CA key is destroyed)", certPath, caLabel(next.cert))
	promoted := &authority{cert: next.cert, certPath: certPath, keyPath: keyPath}
	if _, err := writeBundle(o.Dir, []*authority{promoted}); err != nil {
		return err
	}
	o.Out("updated   %s (serial %s only)", BundlePath(o.Dir), SerialHex(next.cert.SerialNumber))
	if err := os.Remove(next.keyPath); err != nil {
		return err
	}
	if err := os.Remove(next.certPath); err != nil {
		return err
	}
	if err := os.Remove(filepath.Dir(next.certPath)); err != nil {
		return err
	}
	for _, l := range stale {
		o.Out("untrusted %s (issued by the retired CA; re-issue it with certgen --force --agents %s)", l.path, l.name)
	}
	return nil
}

// checkedKeyPEM returns the bytes of a's key file after checking that the
// key matches the certificate.
func checkedKeyPEM(a *authority) ([]byte, error) {
	if _, err := a.signer(); err != nil {
		return nil, err
	}
	return os.ReadFile(a.keyPath)
}

// leaf is an agent's certificate file under agents/.
type leaf struct {
	name, path string
	cert       *x509.Certificate // nil when the file does not parse
}

// listLeaves returns the certificate of every agents/<name>/ directory
// that has one, by name.
func listLeaves(dir string) ([]leaf, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "agents"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []leaf
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		certPath, _ := LeafPaths(dir, e.Name())
		c, err := readLeaf(certPath)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		out = append(out, leaf{name: e.Name(), path: certPath, cert: c})
	}
	return out, nil
}

// leavesOf returns the leaves under agents/ that a signed, and those that
// do not parse (whose issuer nobody can tell).
func leavesOf(dir string, a *authority) ([]leaf, error) {
	all, err := listLeaves(dir)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(l leaf) bool {
		return l.cert != nil && issuerOf(l.cert, []*authority{a}) == nil
	}), nil
}

func leafPaths(ls []leaf) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.path
		if l.cert == nil {
			out[i] += " (unreadable)"
		}
	}
	return out
}

func leafNames(ls []leaf) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.name
	}
	return out
}
