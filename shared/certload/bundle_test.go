package certload_test

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"crypto/rand"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

func origin() certload.Origin { return certload.Origin{Cert: "cert.pem", Key: "key.pem", CA: "ca.pem"} }

func TestParse(t *testing.T) {
	ca := pki.NewCA(t, "CA A2A Root CA")
	other := pki.NewCA(t, "Rogue CA")
	good := ca.Issue(t, "extractor")
	now := time.Now()
	expired := ca.Issue(t, "extractor", pki.Validity(now.Add(-48*time.Hour), now.Add(-time.Hour)))
	future := ca.Issue(t, "extractor", pki.Validity(now.Add(time.Hour), now.Add(48*time.Hour)))
	serverOnly := ca.Issue(t, "extractor", pki.EKU(x509.ExtKeyUsageServerAuth))
	clientOnly := ca.Issue(t, "lambda", pki.EKU(x509.ExtKeyUsageClientAuth))
	noEKU := ca.Issue(t, "lambda", pki.EKU())
	anyEKU := ca.Issue(t, "lambda", pki.EKU(x509.ExtKeyUsageAny))

	sec1 := func(l *pki.Leaf) []byte {
		der, err := x509.MarshalECPrivateKey(l.Key.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	legacyEncrypted := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}})

	tests := []struct {
		name      string
		cert, key []byte
		ca        []byte
		usage     certload.Usage
		want      error
	}{
		{"valid PKCS#8", good.CertPEM, good.KeyPEM, ca.PEM, certload.UsageServerAndClient, nil},
		{"valid SEC1 key", good.CertPEM, sec1(good), ca.PEM, certload.UsageServerAndClient, nil},
		{"CA bundle with old and new CA", good.CertPEM, good.KeyPEM, append(append([]byte{}, other.PEM...), ca.PEM...), certload.UsageServerAndClient, nil},
		{"PKCS#1 key of another cert", good.CertPEM, pkcs1, ca.PEM, certload.UsageServerAndClient, certload.ErrKeyMismatch},
		{"key of another cert", good.CertPEM, ca.Issue(t, "validator").KeyPEM, ca.PEM, certload.UsageServerAndClient, certload.ErrKeyMismatch},
		{"encrypted PKCS#8 key", good.CertPEM, encrypted, ca.PEM, certload.UsageServerAndClient, certload.ErrEncryptedKey},
		{"encrypted legacy key", good.CertPEM, legacyEncrypted, ca.PEM, certload.UsageServerAndClient, certload.ErrEncryptedKey},
		{"no key", good.CertPEM, nil, ca.PEM, certload.UsageServerAndClient, certload.ErrNoKey},
		{"cert in key slot", good.CertPEM, good.CertPEM, ca.PEM, certload.UsageServerAndClient, certload.ErrNoKey},
		{"garbage cert", []byte("hello"), good.KeyPEM, ca.PEM, certload.UsageServerAndClient, certload.ErrNoCertificate},
		{"key in cert slot", good.KeyPEM, good.KeyPEM, ca.PEM, certload.UsageServerAndClient, certload.ErrNoCertificate},
		{"no CA", good.CertPEM, good.KeyPEM, nil, certload.UsageServerAndClient, certload.ErrNoCA},
		{"leaf as CA", good.CertPEM, good.KeyPEM, good.CertPEM, certload.UsageServerAndClient, certload.ErrNotCA},
		{"signed by another CA", good.CertPEM, good.KeyPEM, other.PEM, certload.UsageServerAndClient, certload.ErrUntrusted},
		{"expired", expired.CertPEM, expired.KeyPEM, ca.PEM, certload.UsageServerAndClient, certload.ErrExpired},
		{"not yet valid", future.CertPEM, future.KeyPEM, ca.PEM, certload.UsageServerAndClient, certload.ErrNotYetValid},
		{"server-only cert used as client", serverOnly.CertPEM, serverOnly.KeyPEM, ca.PEM, certload.UsageClient, certload.ErrWrongUsage},
		{"client-only cert used as server", clientOnly.CertPEM, clientOnly.KeyPEM, ca.PEM, certload.UsageServerAndClient, certload.ErrWrongUsage},
		{"client-only cert for the Lambda", clientOnly.CertPEM, clientOnly.KeyPEM, ca.PEM, certload.UsageClient, nil},
		{"cert without any EKU", noEKU.CertPEM, noEKU.KeyPEM, ca.PEM, certload.UsageClient, certload.ErrWrongUsage},
		{"cert with anyExtendedKeyUsage only", anyEKU.CertPEM, anyEKU.KeyPEM, ca.PEM, certload.UsageClient, certload.ErrWrongUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := certload.Parse(tc.cert, tc.key, tc.ca, origin(), tc.usage, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil {
				if b.Leaf() == nil || b.Roots == nil {
					t.Fatal("bundle incomplete")
				}
				return
			}
			// Errors name where the material came from, never its contents.
			if !strings.Contains(err.Error(), ".pem") {
				t.Errorf("error %q does not name its origin", err)
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error leaks PEM: %q", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	ca := pki.NewCA(f, "CA")
	l := ca.Issue(f, "lambda")
	f.Add(l.CertPEM, l.KeyPEM, ca.PEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, cert, key, caPEM []byte) {
		b, err := certload.Parse(cert, key, caPEM, origin(), certload.UsageClient, time.Now())
		if err == nil && b.Leaf() == nil {
			t.Fatal("nil leaf without error")
		}
	})
}
