// Package certgen creates the project CA and agent certificates in the
// layout of docs/configuration.md, Certificates, and publishes them to
// Secrets Manager. The
// certgen command and the tests that need a certs directory share it.
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
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// Options say what Generate creates.
type Options struct {
	Dir     string   // the certs directory
	Force   bool     // re-issue the selected leaves with the existing CA
	ForceCA bool     // new CA, every selected leaf re-issued
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
	ca, caKey, created, err := loadOrCreateCA(o)
	if err != nil {
		return err
	}
	for _, name := range o.Agents {
		certPath, keyPath := LeafPaths(o.Dir, name)
		if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
			return err
		}
		_, errC := os.Stat(certPath)
		_, errK := os.Stat(keyPath)
		exists := errC == nil && errK == nil
		if exists && !o.Force && !created {
			o.Out("kept      %s", certPath)
			continue
		}
		if err := issueLeaf(o, name, ca, caKey, certPath, keyPath); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		verb := "created  "
		if exists {
			verb = "re-issued"
		}
		o.Out("%s %s", verb, certPath)
	}
	return nil
}

// loadOrCreateCA returns the CA, creating it when both files are absent or
// --force-ca is set; created reports whether it is new.
func loadOrCreateCA(o Options) (*x509.Certificate, crypto.Signer, bool, error) {
	certPath, keyPath := CAPaths(o.Dir)
	_, errC := os.Stat(certPath)
	_, errK := os.Stat(keyPath)
	switch {
	case o.ForceCA || (errors.Is(errC, os.ErrNotExist) && errors.Is(errK, os.ErrNotExist)):
		key, err := newKey(o.KeyType, true)
		if err != nil {
			return nil, nil, false, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "CA A2A Root CA", Organization: []string{"CA A2A"}, Country: []string{"FR"}},
			NotBefore:             o.Now.Add(-5 * time.Minute),
			NotAfter:              o.Now.AddDate(10, 0, 0),
			IsCA:                  true,
			BasicConstraintsValid: true,
			MaxPathLen:            0,
			MaxPathLenZero:        true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			SubjectKeyId:          keyID(key.Public()),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, nil, false, err
		}
		if err := writePair(certPath, keyPath, der, key); err != nil {
			return nil, nil, false, err
		}
		o.Out("created   %s", certPath)
		cert, _ := x509.ParseCertificate(der)
		return cert, key, true, nil
	case errC != nil || errK != nil:
		return nil, nil, false, fmt.Errorf("CA is incomplete: need both %s and %s (or --force-ca to start over)", certPath, keyPath)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, false, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, false, err
	}
	cas, err := certload.ParseCAs(certPEM, certPath)
	if err != nil {
		return nil, nil, false, err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, nil, false, fmt.Errorf("%s: no PEM private key", keyPath)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%s: not a PKCS#8 private key", keyPath)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok || !publicKeysEqual(signer.Public(), cas[0].PublicKey) {
		return nil, nil, false, fmt.Errorf("%s does not match %s", keyPath, certPath)
	}
	return cas[0], signer, false, nil
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
	return writePair(certPath, keyPath, der, key)
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
