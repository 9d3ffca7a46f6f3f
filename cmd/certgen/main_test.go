package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/testutil/ci"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
)

// certgenRun runs one command line in-process and returns its exit status and
// outputs.
func certgenRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustRun runs args and fails the test unless they succeed.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := certgenRun(t, args...)
	if code != 0 {
		t.Fatalf("certgen %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	checkNoSecrets(t, out+errOut)
	return out
}

// checkNoSecrets fails when output carries key material or any PEM.
func checkNoSecrets(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "-----BEGIN") || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("output carries PEM:\n%s", out)
	}
}

var actionLine = regexp.MustCompile(`^(created|kept|re-issued|updated) +(\S+)$`)

// actions maps each path printed to its action and checks that every line
// has the one-action shape.
func actions(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := actionLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected output line %q", line)
		}
		if _, dup := got[m[2]]; dup {
			t.Fatalf("two lines for %s:\n%s", m[2], out)
		}
		got[m[2]] = m[1]
	}
	return got
}

func pemBlocks(t *testing.T, path, typ string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != typ || len(bytes.TrimSpace(rest)) != 0 || len(block.Headers) != 0 {
		t.Fatalf("%s: want exactly one %q PEM block", path, typ)
	}
	return block.Bytes
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(pemBlocks(t, path, "CERTIFICATE"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func readKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(pemBlocks(t, path, "PRIVATE KEY"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k.(crypto.Signer)
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", path, got, want)
	}
}

// requireTool skips without the tool, or fails in CI.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		ci.Required(t, name+" is not on PATH")
	}
	return p
}

func TestGenerate(t *testing.T) {
	openssl := requireTool(t, "openssl")
	tests := []struct {
		name      string
		args      []string
		agents    []string
		days      int
		rsa       bool
		caKeyBits int // RSA CA modulus; 0 for P-256
	}{
		{"defaults", nil, certgen.DefaultAgents, 365, false, 0},
		{"rsa, 30 days, two agents", []string{"--key-type", "rsa", "--days", "30", "--agents", "lambda", "orchestrator"},
			[]string{"lambda", "orchestrator"}, 30, true, 3072},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			start := time.Now()
			out := mustRun(t, append([]string{"--certs-dir", dir}, tc.args...)...)
			caCertPath, caKeyPath := certgen.CAPaths(dir)

			want := map[string]string{caCertPath: "created", certgen.BundlePath(dir): "created"}
			for _, a := range tc.agents {
				c, _ := certgen.LeafPaths(dir, a)
				want[c] = "created"
			}
			if got := actions(t, out); !maps.Equal(got, want) {
				t.Errorf("actions %v, want %v", got, want)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "agents"))
			if len(entries) != len(tc.agents) {
				t.Errorf("%d agent directories, want %d", len(entries), len(tc.agents))
			}

			for _, d := range []string{dir, filepath.Join(dir, "ca"), filepath.Join(dir, "agents"), certgen.IssuedDir(dir)} {
				assertMode(t, d, 0o700)
			}
			assertMode(t, caKeyPath, 0o600)
			// With no rotation in progress the bundle is the CA, byte for byte.
			if b, c := pemBlocks(t, certgen.BundlePath(dir), "CERTIFICATE"), pemBlocks(t, caCertPath, "CERTIFICATE"); !bytes.Equal(b, c) {
				t.Error("ca-bundle.pem is not ca-cert.pem")
			}
			if _, err := os.Stat(certgen.CRLPath(dir)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a CRL file before any revocation: %v", err)
			}

			ca, caKey := readCert(t, caCertPath), readKey(t, caKeyPath)
			if got := ca.Subject.String(); got != "CN=CA A2A Root CA,O=CA A2A,C=FR" {
				t.Errorf("CA subject %q", got)
			}
			if !ca.IsCA || !ca.BasicConstraintsValid || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
				t.Errorf("CA basic constraints: CA %v valid %v pathlen %d zero %v", ca.IsCA, ca.BasicConstraintsValid, ca.MaxPathLen, ca.MaxPathLenZero)
			}
			if ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("CA key usage %b", ca.KeyUsage)
			}
			if exp := start.AddDate(10, 0, 0); ca.NotAfter.Before(exp.Add(-time.Minute)) || ca.NotAfter.After(exp.Add(time.Minute)) {
				t.Errorf("CA not after %s, want 10 years", ca.NotAfter)
			}
			if len(ca.SubjectKeyId) == 0 || ca.CheckSignatureFrom(ca) != nil {
				t.Error("CA: no subject key id or not self-signed")
			}
			if !caKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(ca.PublicKey) {
				t.Error("CA key does not match CA cert")
			}
			checkKeyType(t, "CA", caKey, tc.caKeyBits)

			roots := x509.NewCertPool()
			roots.AddCert(ca)
			serials := map[string]bool{ca.SerialNumber.String(): true}
			for _, name := range tc.agents {
				certPath, keyPath := certgen.LeafPaths(dir, name)
				assertMode(t, filepath.Dir(certPath), 0o700)
				assertMode(t, keyPath, 0o600)
				c, key := readCert(t, certPath), readKey(t, keyPath)

				if got, want := c.Subject.String(), "CN="+name+".ca-a2a.local,O=CA A2A,C=FR"; got != want {
					t.Errorf("%s: subject %q, want %q", name, got, want)
				}
				if !slices.Equal(c.DNSNames, []string{name + ".ca-a2a.local"}) ||
					len(c.IPAddresses)+len(c.EmailAddresses)+len(c.URIs) != 0 {
					t.Errorf("%s: SANs dns %v ip %v email %v uri %v", name, c.DNSNames, c.IPAddresses, c.EmailAddresses, c.URIs)
				}
				if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) || len(c.UnknownExtKeyUsage) != 0 {
					t.Errorf("%s: EKU %v", name, c.ExtKeyUsage)
				}
				wantKU := x509.KeyUsageDigitalSignature
				if tc.rsa {
					wantKU |= x509.KeyUsageKeyEncipherment
					checkKeyType(t, name, key, 2048)
				} else {
					checkKeyType(t, name, key, 0)
				}
				if c.KeyUsage != wantKU {
					t.Errorf("%s: key usage %b, want %b", name, c.KeyUsage, wantKU)
				}
				if c.IsCA {
					t.Errorf("%s: leaf is a CA", name)
				}
				if d := c.NotAfter.Sub(c.NotBefore); d < time.Duration(tc.days)*24*time.Hour || d > time.Duration(tc.days)*24*time.Hour+time.Hour {
					t.Errorf("%s: validity %s, want %d days", name, d, tc.days)
				}
				if c.NotBefore.After(time.Now()) {
					t.Errorf("%s: not yet valid", name)
				}
				if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() < 64 || c.SerialNumber.BitLen() > 128 || serials[c.SerialNumber.String()] {
					t.Errorf("%s: serial %x", name, c.SerialNumber)
				}
				serials[c.SerialNumber.String()] = true
				if archived := readCert(t, filepath.Join(certgen.IssuedDir(dir), certgen.SerialHex(c.SerialNumber)+".pem")); !archived.Equal(c) {
					t.Errorf("%s: ca/issued/ holds another certificate under its serial", name)
				}
				if len(c.SubjectKeyId) == 0 || !bytes.Equal(c.AuthorityKeyId, ca.SubjectKeyId) {
					t.Errorf("%s: SKI %x AKI %x (CA SKI %x)", name, c.SubjectKeyId, c.AuthorityKeyId, ca.SubjectKeyId)
				}
				if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PublicKey) {
					t.Errorf("%s: key does not match cert", name)
				}
				for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
					if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: name + ".ca-a2a.local", KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
						t.Errorf("%s: Go verify: %v", name, err)
					}
				}
				for _, purpose := range []string{"sslserver", "sslclient"} {
					if b, err := exec.Command(openssl, "verify", "-purpose", purpose, "-CAfile", caCertPath, certPath).CombinedOutput(); err != nil {
						t.Errorf("%s: openssl verify -purpose %s: %v\n%s", name, purpose, err, b)
					}
				}
			}
		})
	}
}

// checkKeyType wants an RSA key of bits, or a P-256 key when bits is 0.
func checkKeyType(t *testing.T, who string, key crypto.Signer, bits int) {
	t.Helper()
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if bits != 0 || k.Curve != elliptic.P256() {
			t.Errorf("%s: ECDSA %s key, want RSA-%d", who, k.Curve.Params().Name, bits)
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() != bits {
			t.Errorf("%s: RSA-%d key, want %d (0 = P-256)", who, k.N.BitLen(), bits)
		}
	default:
		t.Errorf("%s: key type %T", who, key)
	}
}

func TestRerunKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "--certs-dir", dir)
	before := pki.Snapshot(t, dir)
	out := mustRun(t, "--certs-dir", dir)
	for path, action := range actions(t, out) {
		if action != "kept" {
			t.Errorf("%s: %s on a re-run", path, action)
		}
	}
	if n := len(actions(t, out)); n != len(certgen.DefaultAgents)+1 {
		t.Errorf("%d lines, want one per agent and one for the CA:\n%s", n, out)
	}
	if after := pki.Snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("a re-run without --force changed files")
	}
}

func TestForceReissuesLeavesWithSameCA(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "--certs-dir", dir)
	before := pki.Snapshot(t, dir)
	out := mustRun(t, "--certs-dir", dir, "--force", "--agents", "lambda,extractor")

	caCert, caKey := certgen.CAPaths(dir)
	want := map[string]string{caCert: "kept"}
	for _, a := range []string{"lambda", "extractor"} {
		c, _ := certgen.LeafPaths(dir, a)
		want[c] = "re-issued"
	}
	if got := actions(t, out); !maps.Equal(got, want) {
		t.Errorf("actions %v, want %v", got, want)
	}
	after := pki.Snapshot(t, dir)
	for path, old := range before {
		changed := !bytes.Equal(old, after[path])
		rel, _ := filepath.Rel(dir, path)
		selected := strings.HasPrefix(rel, filepath.Join("agents", "lambda")) || strings.HasPrefix(rel, filepath.Join("agents", "extractor"))
		if changed != selected {
			t.Errorf("%s: changed %v, want %v", rel, changed, selected)
		}
	}
	ca := readCert(t, caCert)
	assertMode(t, caKey, 0o600)
	for _, a := range []string{"lambda", "extractor"} {
		c, k := certgen.LeafPaths(dir, a)
		assertMode(t, k, 0o600)
		if err := readCert(t, c).CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s: re-issued leaf not signed by the kept CA: %v", a, err)
		}
	}
}

func TestForceCAReissuesEverySelectedLeaf(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "--certs-dir", dir)
	before := pki.Snapshot(t, dir)
	caCert, caKey := certgen.CAPaths(dir)
	oldCA := readCert(t, caCert)

	mustRun(t, "--certs-dir", dir, "--force-ca")
	after := pki.Snapshot(t, dir)
	for path, old := range before {
		// ca/issued/ is a record of what was issued: it only grows.
		if rel, _ := filepath.Rel(certgen.IssuedDir(dir), path); !strings.HasPrefix(rel, "..") {
			if !bytes.Equal(old, after[path]) {
				t.Errorf("%s changed", path)
			}
			continue
		}
		if bytes.Equal(old, after[path]) {
			t.Errorf("%s unchanged after --force-ca", path)
		}
	}
	ca := readCert(t, caCert)
	if ca.Equal(oldCA) || !readKey(t, caKey).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(ca.PublicKey) {
		t.Fatal("--force-ca did not make a new CA with its key")
	}
	for _, a := range certgen.DefaultAgents {
		c, _ := certgen.LeafPaths(dir, a)
		if err := readCert(t, c).CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s: not signed by the new CA: %v", a, err)
		}
	}
}

func TestNewCAReissuesExistingLeaves(t *testing.T) {
	// Leaves from a CA that is gone are useless: both CA files absent means
	// a new CA and every selected leaf issued again.
	dir := t.TempDir()
	mustRun(t, "--certs-dir", dir, "--agents", "lambda")
	if err := os.RemoveAll(filepath.Join(dir, "ca")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "--certs-dir", dir, "--agents", "lambda")
	caCert, _ := certgen.CAPaths(dir)
	c, _ := certgen.LeafPaths(dir, "lambda")
	if err := readCert(t, c).CheckSignatureFrom(readCert(t, caCert)); err != nil {
		t.Fatal(err)
	}
}

func TestBrokenCA(t *testing.T) {
	other := t.TempDir()
	mustRun(t, "--certs-dir", other, "--agents", "lambda")
	_, otherKey := certgen.CAPaths(other)

	tests := []struct {
		name   string
		break_ func(caCert, caKey string) error
		want   string
	}{
		{"key missing", func(_, k string) error { return os.Remove(k) }, "incomplete"},
		{"cert missing", func(c, _ string) error { return os.Remove(c) }, "incomplete"},
		{"key of another CA", func(_, k string) error {
			b, err := os.ReadFile(otherKey)
			if err != nil {
				return err
			}
			return os.WriteFile(k, b, 0o600)
		}, "does not match"},
		{"cert is not PEM", func(c, _ string) error { return os.WriteFile(c, []byte("garbage"), 0o644) }, "ca-cert.pem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mustRun(t, "--certs-dir", dir, "--agents", "lambda")
			caCert, caKey := certgen.CAPaths(dir)
			if err := tc.break_(caCert, caKey); err != nil {
				t.Fatal(err)
			}
			before := pki.Snapshot(t, dir)
			for _, extra := range [][]string{nil, {"--force"}} {
				code, out, errOut := certgenRun(t, append([]string{"--certs-dir", dir, "--agents", "lambda"}, extra...)...)
				if code != 1 || !strings.HasPrefix(errOut, "certgen: ") || !strings.Contains(errOut, tc.want) {
					t.Errorf("%v: exit %d stderr %q, want 1 and %q", extra, code, errOut, tc.want)
				}
				if out != "" {
					t.Errorf("%v: stdout %q on failure", extra, out)
				}
			}
			if after := pki.Snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Error("a failed run changed files")
			}
			// --force-ca is the way out.
			mustRun(t, "--certs-dir", dir, "--agents", "lambda", "--force-ca")
		})
	}
}

// copyFile copies src over dst, keeping dst's mode.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestUnusableFilesAreReported covers files certgen keeps but an agent would
// refuse at start-up: the run fails, says how to fix it, writes nothing, and
// the suggested flag fixes it.
func TestUnusableFilesAreReported(t *testing.T) {
	now := time.Now()
	other := t.TempDir()
	mustRun(t, "--certs-dir", other, "--agents", "lambda")
	otherCert, otherKey := certgen.LeafPaths(other, "lambda")

	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // leaves dir with a lambda leaf
		want  []string                       // in stderr
		fix   string                         // the flag that repairs it
	}{
		{"expired leaf", func(t *testing.T, dir string) {
			opts := certgen.Options{Dir: dir, Agents: []string{"lambda"}, Days: 1, Now: now.AddDate(0, 0, -10)}
			if err := certgen.Generate(opts); err != nil {
				t.Fatal(err)
			}
		}, []string{"lambda-cert.pem", "expired", "--force --agents lambda"}, "--force"},
		{"leaf from another CA", func(t *testing.T, dir string) {
			mustRun(t, "--certs-dir", dir, "--agents", "lambda")
			c, k := certgen.LeafPaths(dir, "lambda")
			copyFile(t, otherCert, c)
			copyFile(t, otherKey, k)
		}, []string{"not signed by the CA", "--force"}, "--force"},
		{"key of another agent", func(t *testing.T, dir string) {
			mustRun(t, "--certs-dir", dir, "--agents", "lambda", "extractor")
			_, k := certgen.LeafPaths(dir, "lambda")
			_, ek := certgen.LeafPaths(dir, "extractor")
			copyFile(t, ek, k)
		}, []string{"does not match", "--force"}, "--force"},
		{"certificate of another agent", func(t *testing.T, dir string) {
			mustRun(t, "--certs-dir", dir, "--agents", "lambda", "extractor")
			c, k := certgen.LeafPaths(dir, "lambda")
			ec, ek := certgen.LeafPaths(dir, "extractor")
			copyFile(t, ec, c)
			copyFile(t, ek, k)
		}, []string{"does not name lambda", "--force"}, "--force"},
		{"expired CA", func(t *testing.T, dir string) {
			opts := certgen.Options{Dir: dir, Agents: []string{"lambda"}, Days: 1, Now: now.AddDate(-11, 0, 0)}
			if err := certgen.Generate(opts); err != nil {
				t.Fatal(err)
			}
		}, []string{"ca-cert.pem expired on", "--force-ca"}, "--force-ca"},
		{"CA not valid yet", func(t *testing.T, dir string) {
			opts := certgen.Options{Dir: dir, Agents: []string{"lambda"}, Now: now.Add(48 * time.Hour)}
			if err := certgen.Generate(opts); err != nil {
				t.Fatal(err)
			}
		}, []string{"ca-cert.pem is not valid before", "--force-ca"}, "--force-ca"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			before := pki.Snapshot(t, dir)
			code, _, errOut := certgenRun(t, "--certs-dir", dir, "--agents", "lambda")
			if code != 1 || !strings.HasPrefix(errOut, "certgen: ") {
				t.Errorf("exit %d stderr %q, want 1 and the certgen: prefix", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if after := pki.Snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Error("a failed run changed files")
			}
			mustRun(t, "--certs-dir", dir, "--agents", "lambda", tc.fix)
			mustRun(t, "--certs-dir", dir, "--agents", "lambda") // and it stays fixed
		})
	}
}

func TestFlags(t *testing.T) {
	defaults := strings.Join(certgen.DefaultAgents, ",")
	tests := []struct {
		args    []string
		agents  string // when the parse succeeds
		force   bool
		days    int
		wantErr string // a usage error containing this
	}{
		{nil, defaults, false, 365, ""},
		{[]string{"--agents", "orchestrator", "lambda", "--force"}, "orchestrator,lambda", true, 365, ""},
		{[]string{"--agents", "a,b"}, "a,b", false, 365, ""},
		{[]string{"--agents=a,b", "--days=7"}, "a,b", false, 7, ""},
		{[]string{"-agents", "a", "b,c", "-force"}, "a,b,c", true, 365, ""},
		{[]string{"--force", "--agents", "x"}, "x", true, 365, ""},
		{[]string{"--agents", "a", "--days", "2", "--agents", "b", "a"}, "a,b", false, 2, ""},
		{[]string{"--certs-dir", "--agents", "--agents", "z"}, "z", false, 365, ""}, // a value is a value
		{[]string{"--agents", "x-1", "9z"}, "x-1,9z", false, 365, ""},
		{[]string{"--agents", strings.Repeat("a", 63)}, strings.Repeat("a", 63), false, 365, ""},
		{[]string{"--agents"}, "", false, 0, "at least one name"},
		{[]string{"--agents", "--force"}, "", false, 0, "at least one name"},
		{[]string{"--agents", strings.Repeat("a", 64)}, "", false, 0, "invalid agent name"},
		{[]string{"--agents", "Bad"}, "", false, 0, "invalid agent name"},
		{[]string{"--agents", "under_score"}, "", false, 0, "invalid agent name"},
		{[]string{"--agents", "../etc"}, "", false, 0, "invalid agent name"},
		{[]string{"--agents", "a.b"}, "", false, 0, "invalid agent name"},
		{[]string{"--agents", "trailing-"}, "", false, 0, "invalid agent name"},
		{[]string{"--agents", "a,,b"}, "", false, 0, "invalid agent name"},
		{[]string{"--agents", ","}, "", false, 0, "invalid agent name"},
		{[]string{"--agents="}, "", false, 0, "invalid agent name"},
		{[]string{"--agents", "a", "-x"}, "", false, 0, "not defined"},
		{[]string{"stray"}, "", false, 0, "unexpected argument"},
		{[]string{"--force", "--", "--agents", "a"}, "", false, 0, "unexpected argument"},
		{[]string{"--key-type", "dsa"}, "", false, 0, "--key-type"},
		{[]string{"--days", "0"}, "", false, 0, "--days"},
		{[]string{"--days", "3651"}, "", false, 0, "--days"},
		{[]string{"--days", "x"}, "", false, 0, "invalid value"},
		{[]string{"--certs-dir", ""}, "", false, 0, "--certs-dir"},
	}
	for _, tc := range tests {
		o, _, err := parseGenerate(tc.args)
		if tc.wantErr != "" {
			var u usageError
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &u) {
				t.Errorf("%q: err %v, want a usage error with %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if got := strings.Join(o.Agents, ","); got != tc.agents || o.Force != tc.force || o.Days != tc.days {
			t.Errorf("%q: agents %q force %v days %d, want %q %v %d", tc.args, got, o.Force, o.Days, tc.agents, tc.force, tc.days)
		}
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args   []string
		code   int
		stdout string // substring
	}{
		{[]string{"--certs-dir", dir, "--agents", "lambda"}, 0, "created"},
		{[]string{"-h"}, 0, "usage:"},
		{[]string{"publish", "--help"}, 0, "-prefix"},
		{[]string{"--nope"}, 2, ""},
		{[]string{"--agents", "Nope", "--certs-dir", dir}, 2, ""},
		{[]string{"publish", "stray"}, 2, ""},
		{[]string{"publish", "--agents", "a_b"}, 2, ""},
		{[]string{"thumbprint", "--help"}, 0, "usage:"},
		{[]string{"thumbprint"}, 2, ""},
		{[]string{"thumbprint", "a", "b"}, 2, ""},
		{[]string{"thumbprint", filepath.Join(dir, "missing.pem")}, 1, ""},
		{[]string{"--certs-dir", filepath.Join(dir, "agents", "lambda", "lambda-key.pem", "x")}, 1, ""}, // under a file
	}
	for _, tc := range tests {
		code, out, errOut := certgenRun(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) {
			t.Errorf("%q: exit %d stdout %q, want %d and %q", tc.args, code, out, tc.code, tc.stdout)
		}
		if code != 0 && !strings.HasPrefix(errOut, "certgen: ") {
			t.Errorf("%q: stderr %q lacks the certgen: prefix", tc.args, errOut)
		}
		if code == 0 && errOut != "" {
			t.Errorf("%q: stderr %q on success", tc.args, errOut)
		}
	}
}

func TestThumbprint(t *testing.T) {
	openssl := requireTool(t, "openssl")
	dir := t.TempDir()
	mustRun(t, "--certs-dir", dir, "--agents", "lambda", "extractor")
	for _, a := range []string{"lambda", "extractor"} {
		certPath, keyPath := certgen.LeafPaths(dir, a)
		der, err := exec.Command(openssl, "x509", "-in", certPath, "-outform", "der").Output()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(openssl, "dgst", "-sha256", "-binary")
		cmd.Stdin = bytes.NewReader(der)
		sum, err := cmd.Output()
		if err != nil || len(sum) != 32 {
			t.Fatalf("openssl dgst: %v (%d bytes)", err, len(sum))
		}
		want := base64.RawURLEncoding.EncodeToString(sum)

		if got := mustRun(t, "thumbprint", certPath); got != want+"\n" {
			t.Errorf("%s: certgen %q, openssl %q", a, got, want)
		}
		// The first certificate counts, whatever precedes it; a chain file
		// names its leaf first.
		caCert, _ := certgen.CAPaths(dir)
		mixed := filepath.Join(t.TempDir(), "mixed.pem")
		var b []byte
		for _, p := range []string{keyPath, certPath, caCert} {
			part, _ := os.ReadFile(p)
			b = append(b, part...)
		}
		if err := os.WriteFile(mixed, append([]byte("leading text\n"), b...), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := certgenRun(t, "thumbprint", mixed)
		if code != 0 || out != want+"\n" {
			t.Errorf("%s in a mixed file: exit %d %q, want %q", a, code, out, want)
		}
	}
	_, keyPath := certgen.LeafPaths(dir, "lambda")
	bad := filepath.Join(t.TempDir(), "bad.pem")
	_ = os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), 0o600)
	for _, f := range []string{keyPath, bad} {
		if code, _, errOut := certgenRun(t, "thumbprint", f); code != 1 || !strings.HasPrefix(errOut, "certgen: ") {
			t.Errorf("%s: exit %d %q, want 1", f, code, errOut)
		}
	}
}

// TestBinary checks the real process: main's exit status and streams.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	binPath := filepath.Join(t.TempDir(), "certgen")
	if b, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--certs-dir", dir, "--agents", "lambda"}, 0},
		{[]string{"--bogus"}, 2},
		{[]string{"thumbprint", filepath.Join(dir, "none.pem")}, 1},
	} {
		cmd := exec.Command(binPath, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, _ := cmd.Output()
		if code := cmd.ProcessState.ExitCode(); code != tc.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr.String())
		}
		if tc.code != 0 && (!strings.HasPrefix(stderr.String(), "certgen: ") || len(out) != 0) {
			t.Errorf("%q: stdout %q stderr %q", tc.args, out, stderr.String())
		}
	}
}
