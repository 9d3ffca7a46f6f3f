package main

import (
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
)

// mustFail runs args and wants exit status code with every substring of
// want in stderr, the single "certgen: " prefix, and no PEM anywhere.
func mustFail(t *testing.T, code int, want []string, args ...string) {
	t.Helper()
	got, out, errOut := certgenRun(t, args...)
	if got != code || !strings.HasPrefix(errOut, "certgen: ") || strings.Contains(errOut, "certgen: certgen:") {
		t.Errorf("certgen %s: exit %d stderr %q, want %d", strings.Join(args, " "), got, errOut, code)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("certgen %s: stderr %q lacks %q", strings.Join(args, " "), errOut, w)
		}
	}
	checkNoSecrets(t, out+errOut)
}

func TestRotateAndRetireCommands(t *testing.T) {
	openssl := requireTool(t, "openssl")
	dir := filepath.Join(t.TempDir(), "certs")
	d := []string{"--certs-dir", dir}
	mustRun(t, append(d, "--agents", "lambda", "extractor")...)
	caCert, _ := certgen.CAPaths(dir)
	nextCert, _ := certgen.NextCAPaths(dir)
	bundle := certgen.BundlePath(dir)

	out := mustRun(t, append([]string{"rotate-ca"}, d...)...)
	if !strings.Contains(out, "created   "+nextCert) || !strings.Contains(out, `"CN=CA A2A Root CA,O=CA A2A,C=FR" serial `) || !strings.Contains(out, "updated   "+bundle) {
		t.Errorf("rotate-ca output:\n%s", out)
	}
	mustFail(t, 1, []string{"rotation is in progress", nextCert, "retire-ca"}, append([]string{"rotate-ca"}, d...)...)
	mustFail(t, 1, []string{"rotation is in progress"}, append(d, "--force-ca")...)

	out = mustRun(t, append(d, "--force", "--agents", "lambda")...)
	lambdaCert, _ := certgen.LeafPaths(dir, "lambda")
	extractorCert, _ := certgen.LeafPaths(dir, "extractor")
	if got := actions(t, out); got[caCert] != "kept" || got[nextCert] != "kept" || got[lambdaCert] != "re-issued" || len(got) != 3 {
		t.Errorf("--force during a rotation: %v", got)
	}
	if err := readCert(t, lambdaCert).CheckSignatureFrom(readCert(t, nextCert)); err != nil {
		t.Error("lambda not issued by the next CA")
	}
	// The self-check accepts leaves of either CA while the bundle has both.
	mustRun(t, append(d, "--agents", "lambda", "extractor")...)
	for _, leaf := range []string{lambdaCert, extractorCert} {
		if b, err := exec.Command(openssl, "verify", "-CAfile", bundle, leaf).CombinedOutput(); err != nil {
			t.Errorf("openssl verify %s: %v\n%s", leaf, err, b)
		}
	}

	mustFail(t, 1, []string{"still issued by the current CA", extractorCert, "--force --agents extractor", "retire-ca --force"}, append([]string{"retire-ca"}, d...)...)
	mustRun(t, append(d, "--force", "--agents", "extractor")...)
	out = mustRun(t, append([]string{"retire-ca"}, d...)...)
	for _, w := range []string{"retired   ", "promoted  " + caCert, "updated   " + bundle} {
		if !strings.Contains(out, w) {
			t.Errorf("retire-ca output lacks %q:\n%s", w, out)
		}
	}
	mustFail(t, 1, []string{"no CA rotation in progress", "rotate-ca"}, append([]string{"retire-ca"}, d...)...)
	// The next run keeps everything and says so for the one CA.
	if got := actions(t, mustRun(t, append(d, "--agents", "lambda", "extractor")...)); len(got) != 3 || got[caCert] != "kept" {
		t.Errorf("after retire-ca: %v", got)
	}
}

func TestRevokeCommands(t *testing.T) {
	openssl := requireTool(t, "openssl")
	dir := filepath.Join(t.TempDir(), "certs")
	d := []string{"--certs-dir", dir}
	mustRun(t, append(d, "--agents", "lambda", "extractor")...)
	lambdaCert, _ := certgen.LeafPaths(dir, "lambda")
	extractorCert, _ := certgen.LeafPaths(dir, "extractor")
	serial := readCert(t, lambdaCert).SerialNumber
	crl := certgen.CRLPath(dir)

	out := mustRun(t, "revoke", "lambda", "--certs-dir", dir, "--reason", "keyCompromise")
	if !strings.Contains(out, "revoked   serial "+certgen.SerialHex(serial)) || !strings.Contains(out, "updated   "+crl) {
		t.Errorf("revoke output:\n%s", out)
	}
	first, _ := os.ReadFile(crl)
	// By serial, as openssl prints it, with colons: nothing to do.
	hex := certgen.SerialHex(serial)
	var colons []string
	for i := 0; i < len(hex); i += 2 {
		colons = append(colons, strings.ToLower(hex[i:i+2]))
	}
	out = mustRun(t, append([]string{"revoke", "--serial", strings.Join(colons, ":")}, d...)...)
	if again, _ := os.ReadFile(crl); !strings.HasPrefix(out, "unchanged ") || string(again) != string(first) {
		t.Errorf("revoking again: %q", out)
	}
	for leaf, ok := range map[string]bool{lambdaCert: false, extractorCert: true} {
		_, err := exec.Command(openssl, "verify", "-crl_check", "-CRLfile", crl, "-CAfile", certgen.BundlePath(dir), leaf).CombinedOutput()
		if (err == nil) != ok {
			t.Errorf("openssl verify -crl_check %s: %v, want accepted %v", leaf, err, ok)
		}
	}

	// Kept files are checked against the CRL, and re-issuing is the fix.
	mustFail(t, 1, []string{lambdaCert, "is revoked", "--force --agents lambda"}, append(d, "--agents", "lambda")...)
	mustRun(t, append(d, "--force", "--agents", "lambda")...)
	mustRun(t, append(d, "--agents", "lambda", "extractor")...)

	mustFail(t, 1, []string{"unknown certificate", "nobody"}, append([]string{"revoke", "nobody"}, d...)...)
	mustFail(t, 1, []string{"unknown certificate", "ABCDEF"}, append([]string{"revoke", "--serial", "abcdef"}, d...)...)
	out = mustRun(t, append([]string{"crl", "--crl-days", "7"}, d...)...)
	if !strings.Contains(out, "signed    CRL 2") {
		t.Errorf("crl output:\n%s", out)
	}
	_, caKey := certgen.CAPaths(dir)
	if err := os.Rename(caKey, caKey+".offline"); err != nil {
		t.Fatal(err)
	}
	mustFail(t, 1, []string{"CA key unusable", "ca-key.pem is missing", "CA A2A Root CA"}, append([]string{"revoke", "extractor"}, d...)...)
}

func TestRevokeFlags(t *testing.T) {
	dir := t.TempDir() // never reached: every line is a usage error
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"revoke"}, "NAME or --serial"},
		{[]string{"revoke", "lambda", "--serial", "ab"}, "not both"},
		{[]string{"revoke", "--serial", "ab", "lambda"}, "not both"},
		{[]string{"revoke", "Bad"}, "invalid agent name"},
		{[]string{"revoke", "../x"}, "invalid agent name"},
		{[]string{"revoke", "a", "b"}, "unexpected argument"},
		{[]string{"revoke", "--serial", "xyz"}, "hex digits"},
		{[]string{"revoke", "--serial", strings.Repeat("a", 41)}, "hex digits"},
		{[]string{"revoke", "--serial", "00"}, "not be zero"},
		{[]string{"revoke", "lambda", "--reason", "cACompromise"}, "--reason must be one of"},
		{[]string{"revoke", "lambda", "--crl-days", "0"}, "--crl-days"},
		{[]string{"crl", "--crl-days", "400"}, "--crl-days"},
		{[]string{"crl", "stray"}, "unexpected argument"},
		{[]string{"rotate-ca", "--key-type", "dsa"}, "--key-type"},
		{[]string{"rotate-ca", "stray"}, "unexpected argument"},
		{[]string{"retire-ca", "--nope"}, "not defined"},
	}
	for _, tc := range tests {
		args := append(tc.args, "--certs-dir", dir)
		code, _, errOut := certgenRun(t, args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d %q, want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	for _, in := range []string{"3A7F", "3a:7f", "0x3a7f", "0X3A7F"} {
		n, err := parseSerial(in)
		if err != nil || n.Cmp(big.NewInt(0x3a7f)) != 0 {
			t.Errorf("parseSerial(%q) = %v, %v", in, n, err)
		}
	}
	for _, cmd := range []string{"rotate-ca", "retire-ca", "revoke", "crl"} {
		code, out, _ := certgenRun(t, cmd, "-h")
		if code != 0 || !strings.Contains(out, "usage:") || !strings.Contains(out, "-certs-dir") {
			t.Errorf("%s -h: exit %d %q", cmd, code, out)
		}
	}
}
