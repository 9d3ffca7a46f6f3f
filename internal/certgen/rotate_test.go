package certgen

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// opensslVerify runs `openssl verify` with args and the file, and reports
// whether it accepted the certificate.
func opensslVerify(t *testing.T, file string, args ...string) (bool, string) {
	t.Helper()
	out, err := exec.Command("openssl", append(append([]string{"verify"}, args...), file)...).CombinedOutput()
	ok := err == nil && strings.Contains(string(out), file+": OK")
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("openssl: %v", err)
	}
	return ok, string(out)
}

// bundleCerts parses the bundle file.
func bundleCerts(t *testing.T, dir string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(BundlePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	cas, err := certload.ParseCAs(data, BundlePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	return cas
}

// saveLeaf copies an agent's current certificate aside, to check it after
// it was replaced.
func saveLeaf(t *testing.T, dir, name string) string {
	t.Helper()
	src, _ := LeafPaths(dir, name)
	dst := filepath.Join(t.TempDir(), name+"-old.pem")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

func issuedBy(t *testing.T, certPath string, ca *x509.Certificate) bool {
	t.Helper()
	return readCert(t, certPath).CheckSignatureFrom(ca) == nil
}

// TestRotation walks the three steps of a CA rotation on files and checks
// each state with Go's verifier, with certload as an agent loads the
// bundle, and with openssl.
func TestRotation(t *testing.T) {
	requireOpenSSL(t)
	for _, keyType := range []string{"ecdsa", "rsa"} {
		t.Run(keyType, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			agents := []string{"lambda", "extractor"}
			if err := Generate(Options{Dir: dir, Agents: agents, KeyType: keyType}); err != nil {
				t.Fatal(err)
			}
			caCert, caKey := CAPaths(dir)
			oldCA := readCert(t, caCert)
			oldLeaf := saveLeaf(t, dir, "extractor")

			// Step 1: the next CA, and a bundle of both.
			var lines []string
			out := func(f string, a ...any) { lines = append(lines, f) }
			if err := RotateCA(RotateOptions{Dir: dir, Out: out}); err != nil {
				t.Fatal(err)
			}
			nextCert, nextKey := NextCAPaths(dir)
			assertMode(t, filepath.Dir(nextCert), 0o700)
			assertMode(t, nextKey, 0o600)
			next := readCert(t, nextCert)
			// Same name, byte for byte (Keycloak pins it), another key.
			if !bytes.Equal(next.RawSubject, oldCA.RawSubject) || next.SerialNumber.Cmp(oldCA.SerialNumber) == 0 {
				t.Errorf("next CA subject %q serial %s, want the current CA's subject %q and another serial", next.Subject, next.SerialNumber, oldCA.Subject)
			}
			if !next.IsCA || !next.MaxPathLenZero || next.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign ||
				bytes.Equal(next.SubjectKeyId, oldCA.SubjectKeyId) || next.PublicKeyAlgorithm != oldCA.PublicKeyAlgorithm {
				t.Errorf("next CA: CA %v pathlen0 %v usage %b SKI %x (old %x) alg %v (old %v)",
					next.IsCA, next.MaxPathLenZero, next.KeyUsage, next.SubjectKeyId, oldCA.SubjectKeyId, next.PublicKeyAlgorithm, oldCA.PublicKeyAlgorithm)
			}
			if got := bundleCerts(t, dir); len(got) != 2 || !got[0].Equal(oldCA) || !got[1].Equal(next) {
				t.Fatal("bundle is not current + next")
			}
			if len(lines) != 2 {
				t.Errorf("rotate-ca printed %d lines, want 2", len(lines))
			}

			// Step 2: leaves come from the next CA; the others still verify.
			if err := Generate(Options{Dir: dir, Agents: []string{"lambda"}, Force: true, KeyType: keyType}); err != nil {
				t.Fatal(err)
			}
			lambdaCert, _ := LeafPaths(dir, "lambda")
			extractorCert, _ := LeafPaths(dir, "extractor")
			if !issuedBy(t, lambdaCert, next) || !issuedBy(t, extractorCert, oldCA) {
				t.Fatal("--force during a rotation must issue from the next CA and only re-issue the selected leaves")
			}
			for _, leaf := range []string{lambdaCert, extractorCert} {
				if ok, out := opensslVerify(t, leaf, "-purpose", "sslclient", "-CAfile", BundlePath(dir)); !ok {
					t.Errorf("openssl verify -CAfile ca-bundle.pem %s during the overlap:\n%s", leaf, out)
				}
			}
			if ok, _ := opensslVerify(t, lambdaCert, "-CAfile", caCert); ok {
				t.Error("a leaf of the next CA verifies with the current CA alone")
			}
			pool := x509.NewCertPool()
			for _, c := range bundleCerts(t, dir) {
				pool.AddCert(c)
			}
			for _, leaf := range []string{lambdaCert, extractorCert} {
				chains, err := readCert(t, leaf).Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
				if err != nil || len(chains) != 1 {
					t.Errorf("Go verify %s against the bundle: %d chains, %v", leaf, len(chains), err)
				}
			}

			// Step 3 refused while extractor still comes from the old CA.
			before := pki.Snapshot(t, dir)
			err := RetireCA(RetireOptions{Dir: dir})
			if !errors.Is(err, ErrOldLeaves) || !strings.Contains(err.Error(), extractorCert) || strings.Contains(err.Error(), lambdaCert) ||
				!strings.Contains(err.Error(), "--force --agents extractor") {
				t.Fatalf("retire-ca with an old leaf: %v", err)
			}
			if after := pki.Snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Fatal("a refused retire-ca changed files")
			}
			if err := Generate(Options{Dir: dir, Agents: []string{"extractor"}, Force: true, KeyType: keyType}); err != nil {
				t.Fatal(err)
			}
			if err := RetireCA(RetireOptions{Dir: dir}); err != nil {
				t.Fatal(err)
			}

			// The next CA is the current one, alone in the bundle.
			if cur := readCert(t, caCert); !cur.Equal(next) {
				t.Fatal("ca-cert.pem is not the former next CA")
			}
			if !publicKeysEqual(readKey(t, caKey).(crypto.Signer).Public(), next.PublicKey) {
				t.Error("ca-key.pem is not the former next CA's key")
			}
			assertMode(t, caKey, 0o600)
			if got := bundleCerts(t, dir); len(got) != 1 || !got[0].Equal(next) {
				t.Fatal("bundle after retire-ca is not the new CA alone")
			}
			if _, err := os.Stat(filepath.Dir(nextCert)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ca/next still there: %v", err)
			}
			retired := filepath.Join(RetiredDir(dir), SerialHex(oldCA.SerialNumber)+"-ca-cert.pem")
			if !readCert(t, retired).Equal(oldCA) {
				t.Error("the retired CA certificate is not kept")
			}
			assertMode(t, RetiredDir(dir), 0o700)
			// The old CA key exists nowhere any more.
			for path, b := range pki.Snapshot(t, dir) {
				if strings.Contains(string(b), "PRIVATE KEY") && path != caKey && !strings.HasPrefix(path, filepath.Join(dir, "agents")) {
					t.Errorf("a private key at %s", path)
				}
			}

			for _, leaf := range []string{lambdaCert, extractorCert} {
				if ok, out := opensslVerify(t, leaf, "-CAfile", BundlePath(dir)); !ok {
					t.Errorf("openssl verify %s after retire-ca:\n%s", leaf, out)
				}
			}
			if ok, out := opensslVerify(t, oldLeaf, "-CAfile", BundlePath(dir)); ok {
				t.Errorf("a leaf of the retired CA still verifies against the bundle:\n%s", out)
			}
			if _, err := readCert(t, oldLeaf).Verify(x509.VerifyOptions{Roots: poolOf(bundleCerts(t, dir))}); err == nil {
				t.Error("Go accepts a leaf of the retired CA")
			}

			// And the next rotation keeps the name again, with a third key.
			if err := RotateCA(RotateOptions{Dir: dir}); err != nil {
				t.Fatal(err)
			}
			third := readCert(t, nextCert)
			if !bytes.Equal(third.RawSubject, oldCA.RawSubject) || bytes.Equal(third.SubjectKeyId, next.SubjectKeyId) || bytes.Equal(third.SubjectKeyId, oldCA.SubjectKeyId) {
				t.Errorf("third CA: subject %q key id %x", third.Subject, third.SubjectKeyId)
			}
		})
	}
}

func poolOf(cas []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c)
	}
	return p
}

func TestRotationRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // a certs dir (lambda and extractor issued) to break
		run   func(dir string) error
		want  error
		msg   string // in the message
	}{
		{"rotate without a CA", func(t *testing.T, dir string) { os.RemoveAll(filepath.Join(dir, "ca")) },
			func(dir string) error { return RotateCA(RotateOptions{Dir: dir}) }, ErrNoCA, "run certgen first"},
		{"rotate twice", rotate,
			func(dir string) error { return RotateCA(RotateOptions{Dir: dir}) }, ErrRotationInProgress, "retire-ca"},
		{"retire without a rotation", func(*testing.T, string) {},
			func(dir string) error { return RetireCA(RetireOptions{Dir: dir}) }, ErrNoRotation, "rotate-ca"},
		{"retire without a rotation, forced", func(*testing.T, string) {},
			func(dir string) error { return RetireCA(RetireOptions{Dir: dir, Force: true}) }, ErrNoRotation, "rotate-ca"},
		{"retire with old leaves", rotate,
			func(dir string) error { return RetireCA(RetireOptions{Dir: dir}) }, ErrOldLeaves, "extractor-cert.pem, "},
		{"retire with a leaf that does not parse", func(t *testing.T, dir string) {
			rotate(t, dir)
			if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "extractor"}, Force: true}); err != nil {
				t.Fatal(err)
			}
			c, _ := LeafPaths(dir, "lambda")
			os.WriteFile(c, []byte("garbage"), 0o644)
		}, func(dir string) error { return RetireCA(RetireOptions{Dir: dir}) }, ErrOldLeaves, "(unreadable)"},
		{"force-ca during a rotation", rotate,
			func(dir string) error { return Generate(Options{Dir: dir, ForceCA: true}) }, ErrRotationInProgress, "retire-ca"},
		{"next CA without its key", func(t *testing.T, dir string) {
			rotate(t, dir)
			_, k := NextCAPaths(dir)
			os.Remove(k)
		}, func(dir string) error { return Generate(Options{Dir: dir, Force: true}) }, ErrIncompleteCA, "ca-key.pem"},
		{"retire with the next CA's key missing", func(t *testing.T, dir string) {
			rotate(t, dir)
			_, k := NextCAPaths(dir)
			os.Remove(k)
		}, func(dir string) error { return RetireCA(RetireOptions{Dir: dir, Force: true}) }, ErrIncompleteCA, "next"},
		{"next CA without a current CA", func(t *testing.T, dir string) {
			rotate(t, dir)
			c, k := CAPaths(dir)
			os.Remove(c)
			os.Remove(k)
		}, func(dir string) error { return Generate(Options{Dir: dir}) }, ErrIncompleteCA, "without a current CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "extractor"}}); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir)
			before := pki.Snapshot(t, dir)
			err := tc.run(dir)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want %v with %q", err, tc.want, tc.msg)
			}
			if after := pki.Snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Error("a refused command changed files")
			}
		})
	}
}

func rotate(t *testing.T, dir string) {
	t.Helper()
	if err := RotateCA(RotateOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
}

func TestRetireForced(t *testing.T) {
	dir := t.TempDir()
	if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "extractor"}}); err != nil {
		t.Fatal(err)
	}
	rotate(t, dir)
	var lines []string
	out := func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	if err := RetireCA(RetireOptions{Dir: dir, Force: true, Out: out}); err != nil {
		t.Fatal(err)
	}
	var untrusted []string
	for _, l := range lines {
		if p, ok := strings.CutPrefix(l, "untrusted "); ok {
			untrusted = append(untrusted, filepath.Base(strings.Fields(p)[0]))
		}
	}
	if slices.Sort(untrusted); !slices.Equal(untrusted, []string{"extractor-cert.pem", "lambda-cert.pem"}) {
		t.Errorf("untrusted leaves reported %v", untrusted)
	}
	// What an agent does at start-up with these files now fails, and
	// re-issuing is the way out.
	if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "extractor"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	caCert, _ := CAPaths(dir)
	for _, a := range []string{"lambda", "extractor"} {
		c, _ := LeafPaths(dir, a)
		if !issuedBy(t, c, readCert(t, caCert)) {
			t.Errorf("%s not re-issued by the new CA", a)
		}
	}
}

// TestBundleFromOlderDirectory: a certs directory made before bundles
// existed gets one on the next run, without anything else changing.
func TestBundleFromOlderDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := Generate(Options{Dir: dir, Agents: []string{"lambda"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(BundlePath(dir)); err != nil {
		t.Fatal(err)
	}
	before := pki.Snapshot(t, dir)
	var lines []string
	if err := Generate(Options{Dir: dir, Agents: []string{"lambda"}, Out: func(f string, a ...any) { lines = append(lines, f) }}); err != nil {
		t.Fatal(err)
	}
	after := pki.Snapshot(t, dir)
	caCert, _ := CAPaths(dir)
	if !bytes.Equal(after[BundlePath(dir)], before[caCert]) {
		t.Error("the bundle is not the CA certificate")
	}
	delete(after, BundlePath(dir))
	if !maps.EqualFunc(before, after, bytes.Equal) {
		t.Error("writing the bundle changed other files")
	}
	if PublishedCA(dir) != BundlePath(dir) {
		t.Error("publish would not use the bundle")
	}
}
