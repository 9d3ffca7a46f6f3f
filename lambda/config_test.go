package lambda_test

import (
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/lambda"
)

func TestConfigFromEnv(t *testing.T) {
	c, err := lambda.ConfigFromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenURL != "https://keycloak.ca-a2a.local:8443/realms/ca-a2a/protocol/openid-connect/token" || c.ServerName != "keycloak.ca-a2a.local" ||
		c.ClientID != "lambda" || c.OrchestratorURL != "https://orchestrator.ca-a2a.local:8001" || c.Concurrency != 8 || !c.VerifyServer ||
		c.Secrets.Cert != "ca-a2a/lambda-cert" || c.Secrets.Key != "ca-a2a/lambda-key" || c.Secrets.CA != "ca-a2a/ca-cert" {
		t.Fatalf("defaults: %+v", c)
	}
	if c.CRL.Configured() {
		t.Fatalf("a CRL configured by default: %+v", c.CRL)
	}
	c, err = lambda.ConfigFromEnv(func(k string) string {
		return map[string]string{"MTLS_CRL_SECRET_ID": "ca-a2a/crl", "MTLS_CRL_REFRESH": "15s"}[k]
	})
	if err != nil || c.CRL.SecretID != "ca-a2a/crl" || c.CRL.Refresh.String() != "15s" {
		t.Fatalf("CRL secret: %+v, %v", c.CRL, err)
	}

	tests := map[string]struct {
		set  map[string]string
		want string
	}{
		"http issuer":            {map[string]string{"OIDC_ISSUER": "http://idp/realms/x"}, "lambda: OIDC_ISSUER must be an https URL"},
		"http token URL":         {map[string]string{"OIDC_TOKEN_URL": "http://idp/token"}, "lambda: OIDC_TOKEN_URL must be an https URL"},
		"http orchestrator":      {map[string]string{"ORCHESTRATOR_URL": "http://127.0.0.1:8001"}, "lambda: ORCHESTRATOR_URL must be an https URL"},
		"concurrency zero":       {map[string]string{"FANOUT_CONCURRENCY": "0"}, "lambda: FANOUT_CONCURRENCY must be 1..256"},
		"concurrency too high":   {map[string]string{"FANOUT_CONCURRENCY": "257"}, "lambda: FANOUT_CONCURRENCY must be 1..256"},
		"not a boolean":          {map[string]string{"MTLS_VERIFY_SERVER": "maybe"}, "lambda: MTLS_VERIFY_SERVER must be true or false"},
		"two CRL sources":        {map[string]string{"MTLS_CRL_SECRET_ID": "ca-a2a/crl", "MTLS_CRL_PATH": "crl.pem"}, "set only one of MTLS_CRL_PATH, MTLS_CRL and MTLS_CRL_SECRET_ID"},
		"refresh without secret": {map[string]string{"MTLS_CRL_REFRESH": "10s"}, "MTLS_CRL_REFRESH is set without MTLS_CRL_SECRET_ID"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := lambda.ConfigFromEnv(func(k string) string { return tc.set[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// Every problem at once.
	_, err = lambda.ConfigFromEnv(func(k string) string {
		return map[string]string{"OIDC_ISSUER": "http://x", "FANOUT_CONCURRENCY": "x"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "OIDC_ISSUER") || !strings.Contains(err.Error(), "FANOUT_CONCURRENCY") {
		t.Fatalf("err = %v, want both problems", err)
	}
}
