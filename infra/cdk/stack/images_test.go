package stack_test

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/infra/cdk/stack"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := stack.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestAgentDockerfile checks the properties the issue asks of the agent
// image: multi-stage, static build, distroless, non-root, /agent entrypoint.
func TestAgentDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{
		`(?m)^FROM --platform=\$BUILDPLATFORM golang:\$\{GO_VERSION\} AS build$`,
		`(?m)^ARG GO_VERSION=1\.26$`,
		`CGO_ENABLED=0`,
		`go build .* -o /agent \./cmd/agent`,
		`(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`,
		`(?m)^USER nonroot`,
		`(?m)^ENTRYPOINT \["/agent"\]$`,
	} {
		if !regexp.MustCompile(want).MatchString(df) {
			t.Errorf("Dockerfile does not match %s", want)
		}
	}
	if n := strings.Count(df, "\nFROM "); n != 2 {
		t.Errorf("%d stages, want 2", n)
	}
	checkCopiesRDSBundle(t, df, stack.AgentRDSCABundle)
}

// checkCopiesRDSBundle checks a Dockerfile's final stage copies the RDS CA
// bundle of the repository to dst.
func checkCopiesRDSBundle(t *testing.T, df, dst string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^COPY (--chmod=0644 )?` + regexp.QuoteMeta(stack.RDSCABundleFile) + ` ` + regexp.QuoteMeta(dst) + `$`)
	loc := re.FindStringIndex(df)
	if loc == nil {
		t.Errorf("Dockerfile does not copy %s to %s", stack.RDSCABundleFile, dst)
		return
	}
	if loc[0] < strings.LastIndex(df, "\nFROM ") {
		t.Errorf("the RDS bundle is copied into a build stage, not the final image")
	}
}

// TestRDSCABundle checks the bundle both images ship: it parses, holds only
// Amazon RDS root CAs with valid self-signatures, and covers the CA the
// database instances use (rds-ca-rsa2048-g1) in the main regions.
func TestRDSCABundle(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), stack.RDSCABundleFile))
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for rest := raw; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if strings.TrimSpace(string(rest)) != "" {
				t.Fatalf("trailing data after the last certificate: %.40q", rest)
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			t.Fatalf("PEM block %q in the bundle", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("certificate %d: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 50 {
		t.Fatalf("%d certificates: not the global bundle", len(certs))
	}
	rsa2048 := map[string]bool{}
	for _, c := range certs {
		sub := c.Subject
		if len(sub.Organization) != 1 || sub.Organization[0] != "Amazon Web Services, Inc." ||
			len(sub.OrganizationalUnit) != 1 || sub.OrganizationalUnit[0] != "Amazon RDS" ||
			!strings.HasPrefix(sub.CommonName, "Amazon RDS ") {
			t.Errorf("not an Amazon RDS CA: %s", sub)
			continue
		}
		if !c.IsCA || !c.BasicConstraintsValid {
			t.Errorf("%s is not a CA certificate", sub.CommonName)
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Errorf("%s: self-signature: %v", sub.CommonName, err)
		}
		if region, ok := strings.CutSuffix(strings.TrimPrefix(sub.CommonName, "Amazon RDS "), " Root CA RSA2048 G1"); ok {
			rsa2048[region] = true
		}
	}
	for _, region := range []string{"us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2"} {
		if !rsa2048[region] {
			t.Errorf("no rds-ca-rsa2048-g1 root for %s", region)
		}
	}
}

// TestKeycloakEntrypoint runs the Keycloak entrypoint with a stand-in for
// kc.sh: the PEMs land in private files that Keycloak's options name, the
// variables that carried them are gone, and the arguments pass through.
func TestKeycloakEntrypoint(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "kc.sh")
	script := `#!/bin/bash
echo "args=$*"
echo "leak=${CA_A2A_TLS_CERT:-}${CA_A2A_TLS_KEY:-}${CA_A2A_TLS_CA:-}"
for f in "$KC_HTTPS_CERTIFICATE_FILE" "$KC_HTTPS_CERTIFICATE_KEY_FILE" "$KC_HTTPS_TRUST_STORE_FILE"; do
  echo "file=$(stat -c %a "$f") $(cat "$f")"
done
echo "dir=$(stat -c %a "$(dirname "$KC_HTTPS_CERTIFICATE_FILE")")"
echo "truststore=$KC_TRUSTSTORE_PATHS"
rm -rf "$(dirname "$KC_HTTPS_CERTIFICATE_FILE")"
`
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(repoRoot(t), "infra", "cdk", "keycloak", "entrypoint.sh")
	run := func(env ...string) (string, error) {
		cmd := exec.Command(bash, entry, "start", "--optimized", "--import-realm")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "CA_A2A_KC_SH=" + fake}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("CA_A2A_TLS_CERT=CERT", "CA_A2A_TLS_KEY=KEY", "CA_A2A_TLS_CA=CA")
	if err != nil {
		t.Fatalf("entrypoint: %v\n%s", err, out)
	}
	for _, want := range []string{
		"args=start --optimized --import-realm\n", "leak=\n",
		"file=600 CERT\n", "file=600 KEY\n", "file=600 CA\n", "dir=700\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`truststore=/tmp/ca-a2a-tls\.\w+/ca-cert\.pem`).MatchString(out) {
		t.Errorf("trust store not set:\n%s", out)
	}

	out, err = run("CA_A2A_TLS_CERT=CERT", "CA_A2A_TLS_CA=CA")
	if err == nil || !strings.Contains(out, "CA_A2A_TLS_KEY is empty") {
		t.Errorf("missing key accepted: %v\n%s", err, out)
	}
}

func TestKeycloakDockerfileImportsTheRealm(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "infra", "cdk", "keycloak", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{
		`(?m)^ARG KEYCLOAK_VERSION=\d+\.\d+\.\d+$`,
		`(?m)^FROM quay\.io/keycloak/keycloak:\$\{KEYCLOAK_VERSION\}$`,
		`KC_DB=postgres`,
		`(?m)^COPY .*infra/keycloak/realm-ca-a2a\.json /opt/keycloak/data/import/`,
		`(?m)^USER 1000$`,
	} {
		if !regexp.MustCompile(want).MatchString(df) {
			t.Errorf("keycloak Dockerfile does not match %s", want)
		}
	}
	checkCopiesRDSBundle(t, df, stack.KeycloakRDSCABundle)
}
