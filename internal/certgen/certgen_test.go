package certgen

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/testutil/ci"
	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
)

func quietOpts(dir string) Options { return Options{Dir: dir} }

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readKey(t *testing.T, path string) any {
	t.Helper()
	data, _ := os.ReadFile(path)
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("%s: not a PKCS#8 PEM key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func requireOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		ci.Required(t, "openssl is not on PATH (apt-get install openssl)")
	}
}

func TestGenerate(t *testing.T) {
	for _, keyType := range []string{"ecdsa", "rsa"} {
		t.Run(keyType, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			o := quietOpts(dir)
			o.KeyType = keyType
			if err := Generate(o); err != nil {
				t.Fatal(err)
			}
			caCertPath, caKeyPath := CAPaths(dir)
			ca := readCert(t, caCertPath)
			if ca.Subject.String() != "CN=CA A2A Root CA,O=CA A2A,C=FR" || !ca.IsCA || !ca.MaxPathLenZero || ca.MaxPathLen != 0 ||
				ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || ca.NotAfter.Before(time.Now().AddDate(9, 11, 0)) {
				t.Fatalf("CA: %+v", ca.Subject)
			}
			for _, d := range []string{dir, filepath.Join(dir, "ca"), filepath.Join(dir, "agents")} {
				assertMode(t, d, 0o700)
			}
			assertMode(t, caKeyPath, 0o600)
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			for _, name := range DefaultAgents {
				certPath, keyPath := LeafPaths(dir, name)
				assertMode(t, filepath.Dir(certPath), 0o700)
				assertMode(t, keyPath, 0o600)
				c := readCert(t, certPath)
				if got, want := c.Subject.String(), "CN="+name+".ca-a2a.local,O=CA A2A,C=FR"; got != want {
					t.Errorf("subject %q, want %q", got, want)
				}
				if len(c.DNSNames) != 1 || c.DNSNames[0] != name+".ca-a2a.local" || len(c.IPAddresses)+len(c.EmailAddresses)+len(c.URIs) != 0 {
					t.Errorf("SANs %v %v", c.DNSNames, c.IPAddresses)
				}
				if len(c.ExtKeyUsage) != 2 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || c.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
					t.Errorf("EKU %v", c.ExtKeyUsage)
				}
				wantKU := x509.KeyUsageDigitalSignature
				switch k := readKey(t, keyPath).(type) {
				case *ecdsa.PrivateKey:
					if keyType != "ecdsa" || k.Curve != elliptic.P256() {
						t.Error("want a P-256 key")
					}
				case *rsa.PrivateKey:
					wantKU |= x509.KeyUsageKeyEncipherment
					if keyType != "rsa" || k.N.BitLen() != 2048 {
						t.Error("want an RSA-2048 key")
					}
				}
				if c.KeyUsage != wantKU {
					t.Errorf("key usage %v", c.KeyUsage)
				}
				if d := c.NotAfter.Sub(c.NotBefore); d < 365*24*time.Hour || d > 366*24*time.Hour {
					t.Errorf("validity %s", d)
				}
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Error(err)
				}
			}
			requireOpenSSL(t)
			for _, name := range DefaultAgents {
				certPath, _ := LeafPaths(dir, name)
				out, err := exec.Command("openssl", "verify", "-CAfile", caCertPath, certPath).CombinedOutput()
				if err != nil || !strings.Contains(string(out), ": OK") {
					t.Errorf("openssl verify %s: %v %s", name, err, out)
				}
			}
		})
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %o, want %o", path, st.Mode().Perm(), want)
	}
}

func TestKeepForceAndForceCA(t *testing.T) {
	dir := t.TempDir()
	o := quietOpts(dir)
	if err := Generate(o); err != nil {
		t.Fatal(err)
	}
	before := pki.Snapshot(t, dir)
	if err := Generate(o); err != nil {
		t.Fatal(err)
	}
	after := pki.Snapshot(t, dir)
	for p, b := range before {
		if !bytes.Equal(b, after[p]) {
			t.Fatalf("%s changed without --force", p)
		}
	}

	o.Force, o.Agents = true, []string{"lambda"}
	if err := Generate(o); err != nil {
		t.Fatal(err)
	}
	after = pki.Snapshot(t, dir)
	lambdaCert, _ := LeafPaths(dir, "lambda")
	orchCert, _ := LeafPaths(dir, "orchestrator")
	caCert, caKey := CAPaths(dir)
	if bytes.Equal(before[lambdaCert], after[lambdaCert]) || !bytes.Equal(before[orchCert], after[orchCert]) || !bytes.Equal(before[caCert], after[caCert]) {
		t.Fatal("--force must re-issue only the selected leaves, with the same CA")
	}

	o.Force, o.ForceCA, o.Agents = false, true, DefaultAgents
	if err := Generate(o); err != nil {
		t.Fatal(err)
	}
	final := pki.Snapshot(t, dir)
	if bytes.Equal(after[caCert], final[caCert]) || bytes.Equal(after[orchCert], final[orchCert]) {
		t.Fatal("--force-ca must create a new CA and re-issue every leaf")
	}

	if err := os.Remove(caKey); err != nil {
		t.Fatal(err)
	}
	if err := Generate(quietOpts(dir)); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("one CA file without the other: err = %v", err)
	}
}

func TestPublish(t *testing.T) {
	endpoint := moto.Start(t)
	moto.Env(t, endpoint)
	dir := t.TempDir()
	if err := Generate(quietOpts(dir)); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	agents := []string{"lambda", "orchestrator"}
	var lines []string
	out := func(f string, a ...any) { lines = append(lines, f) }
	for range 2 {
		if err := Publish(t.Context(), sm, dir, "ca-a2a/", agents, out); err != nil {
			t.Fatal(err)
		}
	}
	if len(lines) != 10 {
		t.Fatalf("%d lines, want 10", len(lines))
	}
	for _, c := range []struct{ secret, file string }{
		{"ca-a2a/ca-cert", filepath.Join(dir, "ca", "ca-cert.pem")},
		{"ca-a2a/lambda-cert", filepath.Join(dir, "agents", "lambda", "lambda-cert.pem")},
		{"ca-a2a/lambda-key", filepath.Join(dir, "agents", "lambda", "lambda-key.pem")},
	} {
		v, err := sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(c.secret)})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(c.file)
		if aws.ToString(v.SecretString) != string(want) {
			t.Fatalf("%s does not hold %s", c.secret, c.file)
		}
		versions, err := sm.ListSecretVersionIds(t.Context(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(c.secret)})
		if err != nil {
			t.Fatal(err)
		}
		if len(versions.Versions) != 2 {
			t.Fatalf("%s has %d versions, want 2", c.secret, len(versions.Versions))
		}
	}
	if _, err := sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("ca-a2a/ca-key")}); err == nil {
		t.Fatal("the CA key was published")
	}
}
