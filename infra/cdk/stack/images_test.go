package stack_test

import (
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
}
