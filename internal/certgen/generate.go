// Package certgen creates the project CA and agent certificates, rotates
// the CA with an overlap, revokes leaves in a CRL, and publishes the
// material to Secrets Manager. The certgen command and the tests that need
// a certs directory share it.
//
// Layout under the certs directory (directories 0700, keys 0600):
//
//	ca/ca-cert.pem, ca/ca-key.pem            the current CA
//	ca/next/ca-cert.pem, ca/next/ca-key.pem  the next CA, during a rotation only
//	ca/ca-bundle.pem                         what agents trust: current CA [+ next CA]
//	ca/crl.pem                               one CRL per CA of the bundle that has one
//	ca/issued/<SERIAL>.pem                   a copy of every leaf certgen issued
//	ca/retired/<SERIAL>-ca-cert.pem          each retired CA (its key is destroyed)
//	ca/retired/<SERIAL>-crl.pem              and its last CRL
//	agents/<name>/<name>-cert.pem, <name>-key.pem
package certgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// Options say what Generate creates.
type Options struct {
	Dir     string   // the certs directory
	Force   bool     // re-issue the selected leaves (from the next CA during a rotation)
	ForceCA bool     // new CA in one cut, every selected leaf re-issued; refused during a rotation
	Days    int      // leaf validity (default 365)
	KeyType string   // "ecdsa" (P-256, default) or "rsa" (2048)
	Agents  []string // the leaves (default DefaultAgents)
	Now     time.Time
	// Out receives one line per action; nil prints nothing.
	Out func(format string, args ...any)
}

// DefaultAgents are the identities certgen creates by default: every
// principal of the roster.
var DefaultAgents = agentapi.Principals()

// CAPaths returns the CA certificate and key paths under dir.
func CAPaths(dir string) (cert, key string) {
	return filepath.Join(dir, "ca", "ca-cert.pem"), filepath.Join(dir, "ca", "ca-key.pem")
}

// LeafPaths returns an agent's certificate and key paths under dir.
func LeafPaths(dir, name string) (cert, key string) {
	d := filepath.Join(dir, "agents", name)
	return filepath.Join(d, name+"-cert.pem"), filepath.Join(d, name+"-key.pem")
}

// Generate creates what o asks for, keeping existing files unless forced.
// Leaves are issued by the next CA while a rotation is in progress (see
// RotateCA), by the current one otherwise; the bundle file is brought up
// to date on every run, so it exists from the first one on.
func Generate(o Options) error {
	if o.Days == 0 {
		o.Days = 365
	}
	if o.KeyType == "" {
		o.KeyType = "ecdsa"
	}
	if o.Agents == nil {
		o.Agents = DefaultAgents
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Out == nil {
		o.Out = func(string, ...any) {}
	}
	for _, d := range []string{o.Dir, filepath.Join(o.Dir, "ca"), filepath.Join(o.Dir, "agents")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	next, err := loadNextCA(o.Dir)
	if err != nil {
		return err
	}
	if next != nil && o.ForceCA {
		return fmt.Errorf("%w (%s): --force-ca would pull the current CA from under it; finish the rotation with retire-ca, or remove %s to abandon it",
			ErrRotationInProgress, next.certPath, filepath.Dir(next.certPath))
	}
	cur, curKey, created, err := loadOrCreateCA(o, next != nil)
	if err != nil {
		return err
	}
	issuer, issuerKey := cur, curKey
	if next != nil {
		if issuerKey, err = next.signer(); err != nil {
			return err
		}
		issuer = next
	}
	verb, err := writeBundle(o.Dir, chain(cur, next))
	if err != nil {
		return err
	}
	if verb != "" {
		o.Out("%-9s %s", verb, BundlePath(o.Dir))
	}
	if created {
		if err := resetCRL(o.Dir, cur, curKey, o.Now, o.Out); err != nil {
			return err
		}
	}
	for _, name := range o.Agents {
		certPath, keyPath := LeafPaths(o.Dir, name)
		if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
			return err
		}
		c, k := pairState(certPath, keyPath)
		exists := c && k
		if exists && !o.Force && !created {
			o.Out("kept      %s", certPath)
			continue
		}
		if err := issueLeaf(o, name, issuer.cert, issuerKey, certPath, keyPath); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		verb := "created"
		if exists {
			verb = "re-issued"
		}
		o.Out("%-9s %s", verb, certPath)
	}
	return nil
}

// loadOrCreateCA returns the current CA and its key, creating them when
// both files are absent or --force-ca is set; created reports whether the
// CA is new. A rotation in progress needs the current CA it started from.
func loadOrCreateCA(o Options, rotating bool) (*authority, crypto.Signer, bool, error) {
	certPath, keyPath := CAPaths(o.Dir)
	c, k := pairState(certPath, keyPath)
	switch {
	case (!c && !k) && rotating:
		nextCert, _ := NextCAPaths(o.Dir)
		return nil, nil, false, fmt.Errorf("%w: %s exists without a current CA (%s)", ErrIncompleteCA, nextCert, certPath)
	case o.ForceCA || (!c && !k):
		der, key, err := newCA(nil, o.KeyType, o.Now)
		if err != nil {
			return nil, nil, false, err
		}
		if err := writePair(certPath, keyPath, der, key); err != nil {
			return nil, nil, false, err
		}
		o.Out("created   %s", certPath)
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, false, err
		}
		return &authority{cert: cert, certPath: certPath, keyPath: keyPath}, key, true, nil
	case !c || !k:
		return nil, nil, false, fmt.Errorf("%w: need both %s and %s (or --force-ca to start over)", ErrIncompleteCA, certPath, keyPath)
	}
	a, err := loadAuthority(certPath, keyPath)
	if err != nil {
		return nil, nil, false, err
	}
	key, err := a.signer()
	if err != nil {
		return nil, nil, false, err
	}
	return a, key, false, nil
}

func issueLeaf(o Options, name string, ca *x509.Certificate, caKey crypto.Signer, certPath, keyPath string) error {
	key, err := newKey(o.KeyType, false)
	if err != nil {
		return err
	}
	usage := x509.KeyUsageDigitalSignature
	if o.KeyType == "rsa" {
		usage |= x509.KeyUsageKeyEncipherment
	}
	dns := agentapi.DNSName(name)
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		Subject:        pkix.Name{CommonName: dns, Organization: []string{"CA A2A"}, Country: []string{"FR"}},
		DNSNames:       []string{dns},
		NotBefore:      o.Now.Add(-5 * time.Minute),
		NotAfter:       o.Now.AddDate(0, 0, o.Days),
		KeyUsage:       usage,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		SubjectKeyId:   keyID(key.Public()),
		AuthorityKeyId: ca.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	if err := archiveIssued(o.Dir, tmpl.SerialNumber, der); err != nil {
		return err
	}
	return writePair(certPath, keyPath, der, key)
}

// archiveIssued keeps a copy of an issued certificate in IssuedDir, before
// it is handed out, so that it can still be revoked by serial once its
// files have been replaced.
func archiveIssued(dir string, serial *big.Int, der []byte) error {
	d := IssuedDir(dir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(d, SerialHex(serial)+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func newKey(kind string, ca bool) (crypto.Signer, error) {
	if kind == "rsa" {
		bits := 2048
		if ca {
			bits = 3072
		}
		return rsa.GenerateKey(rand.Reader, bits)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// writePair writes the key (0600) before the certificate, each atomically,
// so a reader never sees a certificate without its key.
func writePair(certPath, keyPath string, der []byte, key crypto.Signer) error {
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		return err
	}
	return writeAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".certgen-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func keyID(pub crypto.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha1.Sum(der) // RFC 5280 4.2.1.2 method (1); an identifier, not a security property
	return sum[:]
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}
