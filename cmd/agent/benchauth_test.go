package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/testutil/agentproc"
)

// TestNoBenchAuthInProductionBuild: the switch the benchmarks use to run
// POST /message without the token check (CA_A2A_BENCH_AUTH=bypass) exists
// only in a binary built with -tags benchauthbypass. A binary built as
// production builds it holds neither the code nor the variable's name, and
// refuses a call without a token with the variable set; the bench build,
// built the same way with the tag, answers it (so the check can fail).
func TestNoBenchAuthInProductionBuild(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := certgen.Generate(certgen.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	cert, key := certgen.LeafPaths(dir, "validator")
	pair, err := tls.LoadX509KeyPair(certgen.LeafPaths(dir, "lambda"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(certgen.BundlePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	markers := []string{"CA_A2A_BENCH_AUTH", "benchAuthBypass", "internal/benchauth"}
	tests := []struct {
		name       string
		tags       string
		bypassed   bool
		wantStatus int
	}{
		{"production build", "", false, http.StatusUnauthorized},
		{"bench build", "benchauthbypass", true, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// As the image builds it (the tests' shared build), or the same
			// with the tag.
			bin := build(t)
			if tc.tags != "" {
				bin = filepath.Join(t.TempDir(), "agent")
				cmd := exec.Command("go", "build", "-tags", tc.tags, "-o", bin, ".")
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("build: %v\n%s", err, out)
				}
			}
			image, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			syms, err := exec.Command("go", "tool", "nm", bin).Output()
			if err != nil {
				t.Fatalf("go tool nm: %v", err)
			}
			for _, m := range markers {
				if in := bytes.Contains(image, []byte(m)) || bytes.Contains(syms, []byte(m)); in != tc.bypassed {
					t.Errorf("%q in the binary: %v, want %v", m, in, tc.bypassed)
				}
			}

			addr := fmt.Sprintf("127.0.0.1:%d", loopback.Port(t))
			p := agentproc.Start(t, agentproc.Config{Bin: bin, Env: map[string]string{"AGENT_NAME": "validator", "AGENT_ADDR": addr,
				"MTLS_CERT_PATH": cert, "MTLS_KEY_PATH": key, "MTLS_CA_CERT_PATH": certgen.BundlePath(dir),
				"OIDC_JWKS_URL": "https://127.0.0.1:1/certs", "METRICS_EMF": "false", "CA_A2A_BENCH_AUTH": "bypass"}})
			tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: "validator.ca-a2a.local"}}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			var resp *http.Response
			p.WaitUntil(t, "answer POST /message", func() bool {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "https://"+addr+"/message",
					strings.NewReader(`{"jsonrpc":"2.0","method":"get_health","id":1}`))
				resp, err = client.Do(req)
				return err == nil
			})
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("call without a token, CA_A2A_BENCH_AUTH=bypass: HTTP %d, want %d", resp.StatusCode, tc.wantStatus)
			}
		})
	}
}
