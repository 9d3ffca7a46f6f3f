//go:build !benchauthbypass

package server_test

import (
	"net/http"
	"testing"
)

// TestBenchAuthEnvIgnored: in the build every agent runs (no
// benchauthbypass tag), the bench switch is inert: with it set, a call
// without a token, or with a bogus one, is refused as always. (cmd/agent's
// TestNoBenchAuthInProductionBuild checks the binary itself.)
func TestBenchAuthEnvIgnored(t *testing.T) {
	for _, mode := range []string{"bypass", "switch", "naive"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv("CA_A2A_BENCH_AUTH", mode)
			f := start(t)
			for _, token := range []string{"", "x.y.z"} {
				if status, body := f.postAs(t, f.client, token, `{"jsonrpc":"2.0","method":"get_health","id":1}`); status != http.StatusUnauthorized {
					t.Fatalf("token %q with CA_A2A_BENCH_AUTH=%s: HTTP %d %s", token, mode, status, body)
				}
			}
		})
	}
}
