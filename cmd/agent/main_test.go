package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/testutil/agentproc"
	"github.com/ca-a2a/ca-a2a/internal/testutil/emftest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/moto"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pgtest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
)

// binDir holds the real binary, compiled once for every test of the
// package (TestMain).
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agent-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// The archivist tests share one throwaway PostgreSQL cluster.
	code := pgtest.SharedMain(m).Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles the real binary as the image does (CGO_ENABLED=0, a
// static binary; no race detector, whose shadow memory would distort the
// memory measured) on first use and returns its path.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "agent")
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// TestStartupRefusesAnUnusableCRLSecret: with MTLS_CRL_SECRET_ID the binary
// reads its CRL from Secrets Manager at start, through the SDK's default
// configuration (AWS_ENDPOINT_URL, here moto_server). A secret that does not
// exist, or still holds its placeholder, stops it with exit 2 and a message
// naming the variable and the secret.
func TestStartupRefusesAnUnusableCRLSecret(t *testing.T) {
	bin := build(t)
	endpoint := moto.Start(t)
	dir := filepath.Join(t.TempDir(), "certs")
	if err := certgen.Generate(certgen.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	cert, key := certgen.LeafPaths(dir, "archivist")
	awsEnv := []string{"AWS_ENDPOINT_URL=" + endpoint, "AWS_REGION=eu-west-3", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull}
	moto.Env(t, endpoint) // this process's client; the agent gets awsEnv alone
	awsCfg, err := awsconfig.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(awsCfg)
	if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String("ca-a2a/crl"), SecretString: aws.String("Zm9vYmFyPlaceholder0123456789")}); err != nil {
		t.Fatal(err)
	}
	for secret, want := range map[string]string{
		"ca-a2a/crl":     "revocation list (MTLS_CRL_SECRET_ID): certload: no CRL found in secret ca-a2a/crl: not PEM",
		"ca-a2a/crl-not": "revocation list (MTLS_CRL_SECRET_ID): certload: CRL secret ca-a2a/crl-not: certload: secret not found: ca-a2a/crl-not",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append(awsEnv, "PATH="+os.Getenv("PATH"), "AGENT_NAME=archivist", "AGENT_ADDR=127.0.0.1:0",
			"MTLS_CERT_PATH="+cert, "MTLS_KEY_PATH="+key, "MTLS_CA_CERT_PATH="+certgen.BundlePath(dir), "MTLS_CRL_SECRET_ID="+secret,
			"OIDC_JWKS_URL=https://127.0.0.1:1/certs", "ARCHIVE_DSN=sqlite://"+filepath.Join(t.TempDir(), "a.db"))
		out, err := cmd.CombinedOutput()
		cancel()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), want) {
			t.Errorf("MTLS_CRL_SECRET_ID=%s: %v, want exit 2 saying %q:\n%s", secret, err, want, out)
		}
	}
}

// TestStartupRefusals runs the binary with unsafe or broken settings: each
// must exit 2 with a message naming the problem.
func TestStartupRefusals(t *testing.T) {
	bin := build(t)
	dir := filepath.Join(t.TempDir(), "certs")
	if err := certgen.Generate(certgen.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	caPath, caKey := certgen.CAPaths(dir)
	cert, key := certgen.LeafPaths(dir, "archivist")
	otherCert, _ := certgen.LeafPaths(dir, "validator")
	ca := pki.LoadCA(t, caPath, caKey)
	now := time.Now()
	expiredCert, expiredKey, _ := pki.WriteFiles(t, t.TempDir(), ca.Issue(t, "archivist", pki.Validity(now.Add(-48*time.Hour), now.Add(-time.Hour))), ca.PEM)
	rogue := pki.NewCA(t, "CA A2A Root CA")
	rogueCert, rogueKey, _ := pki.WriteFiles(t, t.TempDir(), rogue.Issue(t, "archivist"), rogue.PEM)
	if err := certgen.RefreshCRL(certgen.CRLOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	rogueCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour)}, rogue.Cert, rogue.Key)
	if err != nil {
		t.Fatal(err)
	}
	badPolicy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(badPolicy, []byte(`{"agents":{"archivist":{"drop_table":["lambda"]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}

	good := map[string]string{"AGENT_NAME": "archivist", "AGENT_ADDR": "127.0.0.1:0", "MTLS_CERT_PATH": cert, "MTLS_KEY_PATH": key,
		"MTLS_CA_CERT_PATH": certgen.BundlePath(dir), "MTLS_CRL_PATH": certgen.CRLPath(dir), "OIDC_JWKS_URL": "https://127.0.0.1:1/certs", "ARCHIVE_DSN": "sqlite://" + filepath.Join(t.TempDir(), "a.db")}
	tests := map[string]struct {
		set  map[string]string
		want string
	}{
		"unknown agent":                  {map[string]string{"AGENT_NAME": "mallory"}, "is not an agent"},
		"binding required without certs": {map[string]string{"MTLS_REQUIRE_CLIENT_CERT": "false"}, "needs client certificates"},
		"key of another certificate":     {map[string]string{"MTLS_CERT_PATH": otherCert}, "does not match"},
		"expired certificate":            {map[string]string{"MTLS_CERT_PATH": expiredCert, "MTLS_KEY_PATH": expiredKey}, "expired"},
		"certificate of another CA":      {map[string]string{"MTLS_CERT_PATH": rogueCert, "MTLS_KEY_PATH": rogueKey}, "not signed by the CA"},
		"certificate of another agent":   {map[string]string{"AGENT_NAME": "validator"}, "does not match AGENT_NAME"},
		"malformed policy file":          {map[string]string{"A2A_POLICY_FILE": badPolicy}, "drop_table"},
		"http JWKS URL":                  {map[string]string{"OIDC_JWKS_URL": "http://127.0.0.1:1/certs"}, "https"},
		"archive database without verify-full": {map[string]string{"ARCHIVE_DSN": "postgres://archivist@db.internal/archive?sslmode=require",
			"ARCHIVE_DB_PASSWORD": "db-s3cret"}, "only sslmode=verify-full"},
		"archive password twice": {map[string]string{"ARCHIVE_DSN": "postgres://archivist:db-s3cret@db.internal/archive",
			"ARCHIVE_DB_PASSWORD": "db-s3cret"}, "set only one"},
		// ca-a2a/crl holds a random placeholder until certgen crl and
		// publish have run.
		"the CRL secret's placeholder": {map[string]string{"MTLS_CRL_PATH": "", "MTLS_CRL": "Zm9vYmFyPlaceholder0123456789"}, "revocation list (MTLS_CRL): certload: no CRL found in MTLS_CRL"},
		"a CRL of another CA":          {map[string]string{"MTLS_CRL_PATH": "", "MTLS_CRL": string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: rogueCRL}))}, "CRL is not signed by a trusted CA"},
		"a missing CRL file":           {map[string]string{"MTLS_CRL_PATH": filepath.Join(t.TempDir(), "crl.pem")}, "no such file"},
		"two CRL sources":              {map[string]string{"MTLS_CRL_SECRET_ID": "ca-a2a/crl"}, "set only one of MTLS_CRL_PATH, MTLS_CRL and MTLS_CRL_SECRET_ID"},
		"a CRL refresh out of range":   {map[string]string{"MTLS_CRL_PATH": "", "MTLS_CRL_SECRET_ID": "ca-a2a/crl", "MTLS_CRL_REFRESH": "1h"}, "MTLS_CRL_REFRESH must be a duration from 5s to 1m0s"},
		"JWKS refresh out of range":    {map[string]string{"JWKS_REFRESH_INTERVAL": "1s"}, "JWKS_REFRESH_INTERVAL must be a duration"},
		"extract memory limit in MB":   {map[string]string{"EXTRACT_MEMORY_LIMIT": "256MB"}, "EXTRACT_MEMORY_LIMIT must be a size from 128MiB"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range good {
				if o, ok := tc.set[k]; ok {
					v = o
				}
				env = append(env, k+"="+v)
			}
			for k, v := range tc.set {
				if _, ok := good[k]; !ok {
					env = append(env, k+"="+v)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want code 2\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output does not name the problem (%q):\n%s", tc.want, out)
			}
			if strings.Contains(string(out), "PRIVATE KEY") || strings.Contains(string(out), "db-s3cret") {
				t.Fatal("output leaks key material or a password")
			}
		})
	}

	t.Run("starts, warns, answers healthcheck, and stops on SIGTERM", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		vars := map[string]string{"PATH": os.Getenv("PATH"), "MTLS_VERIFY_SERVER": "false"}
		for k, v := range good {
			vars[k] = v
		}
		vars["AGENT_ADDR"] = addr
		var env []string
		for k, v := range vars {
			env = append(env, k+"="+v)
		}
		var stdout syncbuf.Buffer // EMF lines; the logs are p.Output
		p := agentproc.Start(t, agentproc.Config{Bin: bin, Env: vars, Stdout: &stdout})
		out := p.Output
		p.WaitUntil(t, "listen", func() bool { return strings.Contains(out.String(), `"msg":"agent listening"`) })
		// The identity provider is unreachable: the agent is up but degraded.
		probe := func(args ...string) int {
			hc := exec.Command(bin, append([]string{"healthcheck"}, args...)...)
			hc.Env = env
			out, _ := hc.CombinedOutput()
			t.Logf("healthcheck %v: %s", args, out)
			return hc.ProcessState.ExitCode()
		}
		if code := probe(); code != 0 {
			t.Errorf("liveness probe of a degraded agent: exit %d, want 0", code)
		}
		if code := probe("--strict"); code != 1 {
			t.Errorf("strict probe of a degraded agent: exit %d, want 1", code)
		}
		// A call without a token: refused, and counted.
		pair, err := tls.LoadX509KeyPair(certgen.LeafPaths(dir, "lambda"))
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: "archivist.ca-a2a.local"}}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Post("https://"+addr+"/message", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("call without token: %d", resp.StatusCode)
		}
		if err := p.Stop(); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
		for _, want := range []string{"protection switched off", "MTLS_VERIFY_SERVER=false", "agent listening", "stopped", `"reason":"missing_token"`} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, out.String())
			}
		}
		// Stdout carries the EMF lines written at shutdown, and nothing
		// else; the logs stay on stderr.
		if strings.Contains(out.String(), `"_aws"`) {
			t.Errorf("EMF on stderr:\n%s", out.String())
		}
		lines := emftest.Lines(t, []byte(stdout.String()))
		archivist := map[string]string{"Agent": "archivist"}
		if emftest.Sum(lines, "AuthRefusals", map[string]string{"Agent": "archivist", "Reason": "missing_token"}) != 1 ||
			emftest.Sum(lines, "Requests", archivist) != 1 || emftest.Sum(lines, "CertificateDaysToExpiry", archivist) < 364 {
			t.Errorf("EMF at shutdown:\n%s", stdout.String())
		}
	})
}
