package main

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
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/certload"
)

type genOptions struct {
	dir     string
	force   bool
	forceCA bool
	days    int
	keyType string
	agents  []string
	now     time.Time
	out     func(format string, args ...any)
}

func generateCmd(args []string) error {
	o, err := parseGenerate(args)
	if err != nil {
		return err
	}
	return generate(o)
}

func parseGenerate(args []string) (genOptions, error) {
	fs := flag.NewFlagSet("certgen", flag.ContinueOnError)
	o := genOptions{now: time.Now(), out: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }}
	fs.StringVar(&o.dir, "certs-dir", "./certs", "directory of the CA and agent certificates")
	fs.BoolVar(&o.force, "force", false, "re-issue the selected leaf certificates with the existing CA")
	fs.BoolVar(&o.forceCA, "force-ca", false, "create a new CA and re-issue every selected leaf")
	fs.IntVar(&o.days, "days", 365, "validity of leaf certificates in days")
	fs.StringVar(&o.keyType, "key-type", "ecdsa", "ecdsa (P-256) or rsa (2048)")
	var agents agentList
	if err := parseFlags(fs, &agents, args); err != nil {
		return o, err
	}
	o.agents = agents.names
	if o.keyType != "ecdsa" && o.keyType != "rsa" {
		return o, usageError{fmt.Sprintf("--key-type must be ecdsa or rsa, not %q", o.keyType)}
	}
	if o.days < 1 || o.days > 3650 {
		return o, usageError{"--days must be between 1 and 3650"}
	}
	return o, nil
}

func caPaths(dir string) (cert, key string) {
	return filepath.Join(dir, "ca", "ca-cert.pem"), filepath.Join(dir, "ca", "ca-key.pem")
}

func leafPaths(dir, name string) (cert, key string) {
	d := filepath.Join(dir, "agents", name)
	return filepath.Join(d, name+"-cert.pem"), filepath.Join(d, name+"-key.pem")
}

func generate(o genOptions) error {
	for _, d := range []string{o.dir, filepath.Join(o.dir, "ca"), filepath.Join(o.dir, "agents")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	ca, caKey, created, err := loadOrCreateCA(o)
	if err != nil {
		return err
	}
	for _, name := range o.agents {
		certPath, keyPath := leafPaths(o.dir, name)
		if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
			return err
		}
		_, errC := os.Stat(certPath)
		_, errK := os.Stat(keyPath)
		exists := errC == nil && errK == nil
		if exists && !o.force && !created {
			o.out("kept      %s", certPath)
			continue
		}
		if err := issueLeaf(o, name, ca, caKey, certPath, keyPath); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		verb := "created  "
		if exists {
			verb = "re-issued"
		}
		o.out("%s %s", verb, certPath)
	}
	return nil
}

// loadOrCreateCA returns the CA, creating it when both files are absent or
// --force-ca is set; created reports whether it is new.
func loadOrCreateCA(o genOptions) (*x509.Certificate, crypto.Signer, bool, error) {
	certPath, keyPath := caPaths(o.dir)
	_, errC := os.Stat(certPath)
	_, errK := os.Stat(keyPath)
	switch {
	case o.forceCA || (errors.Is(errC, os.ErrNotExist) && errors.Is(errK, os.ErrNotExist)):
		key, err := newKey(o.keyType, true)
		if err != nil {
			return nil, nil, false, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "CA A2A Root CA", Organization: []string{"CA A2A"}, Country: []string{"FR"}},
			NotBefore:             o.now.Add(-5 * time.Minute),
			NotAfter:              o.now.AddDate(10, 0, 0),
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
		o.out("created   %s", certPath)
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

func issueLeaf(o genOptions, name string, ca *x509.Certificate, caKey crypto.Signer, certPath, keyPath string) error {
	key, err := newKey(o.keyType, false)
	if err != nil {
		return err
	}
	usage := x509.KeyUsageDigitalSignature
	if o.keyType == "rsa" {
		usage |= x509.KeyUsageKeyEncipherment
	}
	dns := certload.DNSName(name)
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		Subject:        pkix.Name{CommonName: dns, Organization: []string{"CA A2A"}, Country: []string{"FR"}},
		DNSNames:       []string{dns},
		NotBefore:      o.now.Add(-5 * time.Minute),
		NotAfter:       o.now.AddDate(0, 0, o.days),
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
