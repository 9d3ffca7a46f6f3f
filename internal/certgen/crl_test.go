package certgen

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// crlBlocks splits the CRL file into one file per PEM block, since
// `openssl crl -in` reads only the first.
func crlBlocks(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(CRLPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			break
		}
		if block.Type != "X509 CRL" {
			t.Fatalf("block %q in crl.pem", block.Type)
		}
		p := filepath.Join(t.TempDir(), fmt.Sprintf("crl-%d.pem", len(files)))
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return files
}

// opensslCRLVerifies checks that every CRL of the file verifies with
// `openssl crl -CAfile` against one CA of caFile. Each CA is offered on its
// own: `openssl crl` looks the issuer up by name only and takes the first
// CA of that name, and during a rotation both CAs share one.
func opensslCRLVerifies(t *testing.T, dir, caFile string) {
	t.Helper()
	data, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	var caFiles []string
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			break
		}
		p := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		caFiles = append(caFiles, p)
	}
	for _, f := range crlBlocks(t, dir) {
		verified := false
		var outs []string
		for _, ca := range caFiles {
			out, err := exec.Command("openssl", "crl", "-in", f, "-CAfile", ca, "-noout").CombinedOutput()
			verified = verified || err == nil && strings.Contains(string(out), "verify OK")
			outs = append(outs, string(out))
		}
		if !verified {
			t.Errorf("openssl crl: %s verifies against no CA of %s\n%s", f, caFile, strings.Join(outs, "\n"))
		}
	}
}

// revocations parses the CRL file against the bundle, as an agent does.
func revocations(t *testing.T, dir string) *certload.Revocations {
	t.Helper()
	data, err := os.ReadFile(CRLPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	r, err := certload.ParseCRLs(data, CRLPath(dir), bundleCerts(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func leafCert(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	c, _ := LeafPaths(dir, name)
	return readCert(t, c)
}

func TestRevoke(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "extractor", "validator"}}); err != nil {
		t.Fatal(err)
	}
	caCert, caKey := CAPaths(dir)
	bundle := BundlePath(dir)
	crlArgs := []string{"-crl_check", "-CRLfile", CRLPath(dir), "-CAfile", bundle}
	lambda := leafCert(t, dir, "lambda")
	lambdaCert, _ := LeafPaths(dir, "lambda")
	extractorCert, _ := LeafPaths(dir, "extractor")

	if err := Revoke(RevokeOptions{Dir: dir, Name: "lambda", Reason: Reasons["keyCompromise"], Now: now}); err != nil {
		t.Fatal(err)
	}
	opensslCRLVerifies(t, dir, bundle)
	if ok, out := opensslVerify(t, lambdaCert, crlArgs...); ok || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl accepts the revoked leaf:\n%s", out)
	}
	if ok, out := opensslVerify(t, extractorCert, crlArgs...); !ok {
		t.Errorf("openssl refuses a leaf that is not revoked:\n%s", out)
	}
	r := revocations(t, dir)
	crl := r.For(readCert(t, caCert))
	if crl == nil || crl.List.Number.Int64() != 1 || crl.Len() != 1 || !r.IsRevoked(lambda) || r.IsRevoked(leafCert(t, dir, "extractor")) {
		t.Fatalf("CRL after one revocation: %+v", crl)
	}
	e := crl.List.RevokedCertificateEntries[0]
	if e.ReasonCode != 1 || !e.RevocationTime.Equal(now) || !crl.List.ThisUpdate.Equal(now) || !crl.List.NextUpdate.Equal(now.AddDate(0, 0, DefaultCRLDays)) {
		t.Errorf("entry reason %d at %s; CRL %s..%s", e.ReasonCode, e.RevocationTime, crl.List.ThisUpdate, crl.List.NextUpdate)
	}
	out, err := exec.Command("openssl", "crl", "-in", CRLPath(dir), "-noout", "-text").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Key Compromise") || !strings.Contains(string(out), SerialHex(lambda.SerialNumber)) {
		t.Errorf("openssl crl -text does not show the serial and reason: %v\n%s", err, out)
	}
	assertMode(t, CRLPath(dir), 0o644)

	// Idempotent, by name and by serial.
	first, _ := os.ReadFile(CRLPath(dir))
	for _, o := range []RevokeOptions{{Name: "lambda"}, {Serial: lambda.SerialNumber}} {
		o.Dir, o.Now = dir, now.Add(time.Hour)
		var lines []string
		o.Out = func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
		if err := Revoke(o); err != nil {
			t.Fatal(err)
		}
		if again, _ := os.ReadFile(CRLPath(dir)); !bytes.Equal(first, again) {
			t.Error("revoking a revoked certificate rewrote the CRL")
		}
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "unchanged ") || !strings.Contains(lines[0], "already revoked") {
			t.Errorf("output %q", lines)
		}
	}

	// The replaced certificate can still be revoked by serial, from
	// ca/issued/; the re-issued one by name. The CRL number grows.
	validator := leafCert(t, dir, "validator")
	if err := Generate(Options{Dir: dir, Agents: []string{"validator"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := Revoke(RevokeOptions{Dir: dir, Serial: validator.SerialNumber, Now: now}); err != nil {
		t.Fatal(err)
	}
	r = revocations(t, dir)
	if crl := r.For(readCert(t, caCert)); crl.List.Number.Int64() != 2 || crl.Len() != 2 || !r.IsRevoked(validator) || !r.IsRevoked(lambda) || r.IsRevoked(leafCert(t, dir, "validator")) {
		t.Errorf("CRL after revoking a replaced certificate: number %v, %d entries", crl.List.Number, crl.Len())
	}
	opensslCRLVerifies(t, dir, bundle)

	// The agents' check of kept files refuses the revoked one.
	tests := []struct {
		name string
		o    RevokeOptions
		prep func()
		want error
	}{
		{"unknown agent", RevokeOptions{Name: "nobody"}, nil, ErrUnknownCertificate},
		{"unknown serial", RevokeOptions{Serial: big.NewInt(0x1234567)}, nil, ErrUnknownCertificate},
		{"name and serial", RevokeOptions{Name: "lambda", Serial: lambda.SerialNumber}, nil, nil},
		{"neither", RevokeOptions{}, nil, nil},
		{"bad reason", RevokeOptions{Name: "extractor", Reason: 8}, nil, nil},
		{"CA key missing", RevokeOptions{Name: "extractor"}, func() { os.Remove(caKey) }, ErrCAKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prep != nil {
				tc.prep()
			}
			before := pki.Snapshot(t, dir)
			tc.o.Dir = dir
			err := Revoke(tc.o)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.HasPrefix(err.Error(), "certgen: ") {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if after := pki.Snapshot(t, dir); len(after) != len(before) || !bytes.Equal(after[CRLPath(dir)], before[CRLPath(dir)]) {
				t.Error("a failed revoke changed files")
			}
		})
	}
}

// TestRevokeDuringRotation: each CA signs the CRL of its own leaves; at
// retire-ca the old CA's list moves to ca/retired/ and crl.pem keeps only
// lists of the CA that remains.
func TestRevokeDuringRotation(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	agents := []string{"lambda", "extractor", "validator", "archivist"}
	if err := Generate(Options{Dir: dir, Agents: agents}); err != nil {
		t.Fatal(err)
	}
	caCert, _ := CAPaths(dir)
	oldCA := readCert(t, caCert)
	rotate(t, dir)
	nextCertPath, _ := NextCAPaths(dir)
	next := readCert(t, nextCertPath)
	if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "validator"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	// extractor and archivist: old CA; lambda and validator: next CA.
	for _, name := range []string{"extractor", "lambda"} {
		if err := Revoke(RevokeOptions{Dir: dir, Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	r := revocations(t, dir)
	if len(r.CRLs()) != 2 || !r.CRLs()[0].Issuer.Equal(oldCA) || !r.CRLs()[1].Issuer.Equal(next) {
		t.Fatal("crl.pem does not hold one CRL per CA, in bundle order")
	}
	opensslCRLVerifies(t, dir, BundlePath(dir))
	crlArgs := []string{"-crl_check", "-CRLfile", CRLPath(dir), "-CAfile", BundlePath(dir)}
	for name, revoked := range map[string]bool{"extractor": true, "lambda": true, "validator": false, "archivist": false} {
		c, _ := LeafPaths(dir, name)
		if ok, out := opensslVerify(t, c, crlArgs...); ok == revoked {
			t.Errorf("%s: openssl -crl_check accepted %v, want %v\n%s", name, ok, !revoked, out)
		}
		if got := r.IsRevoked(readCert(t, c)); got != revoked {
			t.Errorf("%s: IsRevoked %v, want %v", name, got, revoked)
		}
	}
	oldCRL := r.CRLs()[0].List.Raw

	if err := Generate(Options{Dir: dir, Agents: agents, Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := RetireCA(RetireOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	r = revocations(t, dir)
	if len(r.CRLs()) != 1 || !r.CRLs()[0].Issuer.Equal(next) || r.CRLs()[0].Len() != 1 {
		t.Fatal("after retire-ca crl.pem is not the remaining CA's list")
	}
	opensslCRLVerifies(t, dir, BundlePath(dir))
	kept, err := os.ReadFile(filepath.Join(RetiredDir(dir), SerialHex(oldCA.SerialNumber)+"-crl.pem"))
	if block, _ := pem.Decode(kept); err != nil || block == nil || !bytes.Equal(block.Bytes, oldCRL) {
		t.Error("the retired CA's last CRL is not kept")
	}
}

// TestCRLFollowsTheCA: whenever the CA that signed a list leaves the bundle
// (retire-ca, --force-ca), crl.pem is rewritten with a list of a CA that is
// in it, so that agents keep accepting the file and publish replaces the
// old list.
func TestCRLFollowsTheCA(t *testing.T) {
	tests := []struct {
		name string
		step func(t *testing.T, dir string)
	}{
		{"retire-ca, the next CA revoked nothing", func(t *testing.T, dir string) {
			rotate(t, dir)
			if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "extractor"}, Force: true}); err != nil {
				t.Fatal(err)
			}
			if err := RetireCA(RetireOptions{Dir: dir}); err != nil {
				t.Fatal(err)
			}
		}},
		{"force-ca", func(t *testing.T, dir string) {
			if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "extractor"}, ForceCA: true}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "extractor"}}); err != nil {
				t.Fatal(err)
			}
			if err := Revoke(RevokeOptions{Dir: dir, Name: "lambda"}); err != nil {
				t.Fatal(err)
			}
			tc.step(t, dir)
			caCert, _ := CAPaths(dir)
			r := revocations(t, dir)
			if len(r.CRLs()) != 1 || !r.CRLs()[0].Issuer.Equal(readCert(t, caCert)) || r.CRLs()[0].Len() != 0 || r.CRLs()[0].List.Number.Int64() != 1 {
				t.Error("crl.pem is not an empty CRL of the new CA")
			}
		})
	}
}

func TestRefreshCRL(t *testing.T) {
	dir := t.TempDir()
	if err := Generate(Options{Dir: dir, Agents: []string{"lambda", "extractor"}}); err != nil {
		t.Fatal(err)
	}
	caCert, _ := CAPaths(dir)
	ca := readCert(t, caCert)
	now := time.Now().Truncate(time.Second)

	// No CRL yet: an empty one of the current CA.
	if err := RefreshCRL(CRLOptions{Dir: dir, Now: now, Days: 7}); err != nil {
		t.Fatal(err)
	}
	crl := revocations(t, dir).For(ca)
	if crl == nil || crl.Len() != 0 || crl.List.Number.Int64() != 1 || !crl.List.NextUpdate.Equal(now.AddDate(0, 0, 7)) {
		t.Fatalf("first CRL: %+v", crl)
	}
	if err := Revoke(RevokeOptions{Dir: dir, Name: "lambda", Now: now, Reason: Reasons["superseded"]}); err != nil {
		t.Fatal(err)
	}
	// During a rotation the refresh re-signs the lists there are and adds
	// none for the next CA.
	rotate(t, dir)
	later := now.Add(48 * time.Hour)
	if err := RefreshCRL(CRLOptions{Dir: dir, Now: later}); err != nil {
		t.Fatal(err)
	}
	r := revocations(t, dir)
	crl = r.For(ca)
	if len(r.CRLs()) != 1 || crl.List.Number.Int64() != 3 || crl.Len() != 1 || !crl.List.ThisUpdate.Equal(later) ||
		!crl.List.NextUpdate.Equal(later.AddDate(0, 0, DefaultCRLDays)) {
		t.Fatalf("refreshed CRL: %d lists, number %v, %d entries, %s..%s", len(r.CRLs()), crl.List.Number, crl.Len(), crl.List.ThisUpdate, crl.List.NextUpdate)
	}
	if e := crl.List.RevokedCertificateEntries[0]; !e.RevocationTime.Equal(now) || e.ReasonCode != Reasons["superseded"] || !r.IsRevoked(leafCert(t, dir, "lambda")) {
		t.Errorf("refresh changed the entry: %+v", e)
	}
}

// TestPublishRotationAndCRL publishes during an overlap, with a CRL: the
// bundle goes out as ca-cert and the CRL as crl, the CRL first; a CRL the
// bundle does not vouch for stops the publish before anything is written.
func TestPublishRotationAndCRL(t *testing.T) {
	moto.Env(t, moto.Start(t))
	dir := t.TempDir()
	if err := Generate(Options{Dir: dir, Agents: []string{"lambda"}}); err != nil {
		t.Fatal(err)
	}
	rotate(t, dir)
	if err := Revoke(RevokeOptions{Dir: dir, Name: "lambda"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	var lines []string
	out := func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	if err := Publish(t.Context(), sm, dir, "ca-a2a/", []string{"lambda"}, out); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "published ca-a2a/crl ") || !strings.HasPrefix(lines[1], "published ca-a2a/ca-cert ") {
		t.Errorf("publish order %q, want the CRL, then the bundle, then the leaves", lines)
	}
	get := func(name string) string {
		v, err := sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(v.SecretString)
	}
	bundle, _ := os.ReadFile(BundlePath(dir))
	crl, _ := os.ReadFile(CRLPath(dir))
	if got := get("ca-a2a/ca-cert"); got != string(bundle) || strings.Count(got, "BEGIN CERTIFICATE") != 2 {
		t.Error("ca-a2a/ca-cert is not the two-CA bundle")
	}
	if got := get("ca-a2a/crl"); got != string(crl) {
		t.Error("ca-a2a/crl is not crl.pem")
	}

	// A CRL of another CA: nothing published.
	other := t.TempDir()
	if err := Generate(Options{Dir: other, Agents: []string{"lambda"}}); err != nil {
		t.Fatal(err)
	}
	if err := Revoke(RevokeOptions{Dir: other, Name: "lambda"}); err != nil {
		t.Fatal(err)
	}
	foreign, _ := os.ReadFile(CRLPath(other))
	if err := os.WriteFile(CRLPath(dir), foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	err = Publish(t.Context(), sm, dir, "ca-a2a/", []string{"lambda"}, out)
	if !errors.Is(err, ErrBadCRL) || !errors.Is(err, certload.ErrUntrustedCRL) {
		t.Fatalf("publishing a foreign CRL: %v", err)
	}
	if got := get("ca-a2a/crl"); got != string(crl) {
		t.Error("a refused publish replaced the CRL")
	}
	v, err := sm.ListSecretVersionIds(t.Context(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("ca-a2a/ca-cert")})
	if err != nil || len(v.Versions) != 1 {
		t.Errorf("ca-a2a/ca-cert has %d versions after a refused publish (%v), want 1", len(v.Versions), err)
	}
}
