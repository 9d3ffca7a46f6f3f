package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func base() map[string]string {
	return map[string]string{"AGENT_NAME": "archivist", "MTLS_CERT_PATH": "c", "MTLS_KEY_PATH": "k", "MTLS_CA_CERT_PATH": "ca", "MTLS_CRL_PATH": "crl"}
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8004" || !c.MTLSEnabled || !c.RequireClientCert || !c.VerifyServer || !c.BindingEnabled || !c.BindingRequired ||
		c.Issuer != agentapi.DefaultIssuer || c.ServerName != "keycloak.ca-a2a.local" || c.Audience != "ca-a2a-agents" ||
		c.JWKSURL != agentapi.DefaultIssuer+"/protocol/openid-connect/certs" || c.TokenURL != agentapi.DefaultIssuer+"/protocol/openid-connect/token" ||
		c.ClientID != "archivist" || c.PeerURLs["extractor"] != "https://extractor.ca-a2a.local:8002" ||
		c.DocumentsURL != "file://./data/documents" || c.Archive.DSN != "sqlite://./data/archive.db" || len(c.Warnings()) != 0 ||
		c.JWKSRefresh != 10*time.Minute || c.CRL.Path != "crl" || c.CRL.PEM != "" || c.PollInterval != 0 ||
		c.Extract != (Extract{Workers: 4, Timeout: 20 * time.Second, MemoryLimit: 256 << 20, MaxBytes: 20 << 20}) {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestRefusals(t *testing.T) {
	tests := map[string]struct {
		set  map[string]string
		want string
	}{
		"no agent name":                  {map[string]string{"AGENT_NAME": ""}, "AGENT_NAME is required"},
		"unknown agent":                  {map[string]string{"AGENT_NAME": "keycloak"}, "is not an agent"},
		"binding required without certs": {map[string]string{"MTLS_REQUIRE_CLIENT_CERT": "false"}, "TOKEN_BINDING_REQUIRED=true needs client certificates"},
		"binding without TLS":            {map[string]string{"MTLS_ENABLED": "false", "TOKEN_BINDING_REQUIRED": "false"}, "TOKEN_BINDING_ENABLED=true needs MTLS_ENABLED=true"},
		"not a boolean":                  {map[string]string{"MTLS_VERIFY_SERVER": "yes please"}, "MTLS_VERIFY_SERVER must be true or false"},
		"http JWKS":                      {map[string]string{"OIDC_JWKS_URL": "http://idp/certs"}, "OIDC_JWKS_URL must be an https URL"},
		"http token URL":                 {map[string]string{"OIDC_TOKEN_URL": "http://idp/token"}, "OIDC_TOKEN_URL must be an https URL"},
		"http issuer":                    {map[string]string{"OIDC_ISSUER": "http://idp/realms/x"}, "OIDC_ISSUER must be an https URL"},
		"http peer":                      {map[string]string{"EXTRACTOR_URL": "http://127.0.0.1:8002"}, "EXTRACTOR_URL must be an https URL"},
		"bad documents URL":              {map[string]string{"DOCUMENTS_URL": "./docs"}, "DOCUMENTS_URL must be"},
		"bad archive DSN":                {map[string]string{"ARCHIVE_DSN": "mysql://x"}, `ARCHIVE_DSN scheme "mysql" is not supported`},
		"archive DSN without user":       {map[string]string{"ARCHIVE_DSN": "postgres://db.internal/archive"}, "ARCHIVE_DSN names no user"},
		"bad log level":                  {map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		"no certificate":                 {map[string]string{"MTLS_CERT_PATH": "", "MTLS_KEY_PATH": "", "MTLS_CA_CERT_PATH": ""}, "no certificate"},
		"JWKS refresh too often":         {map[string]string{"JWKS_REFRESH_INTERVAL": "5s"}, "JWKS_REFRESH_INTERVAL must be a duration from 30s to 24h0m0s"},
		"JWKS refresh too rare":          {map[string]string{"JWKS_REFRESH_INTERVAL": "48h"}, "JWKS_REFRESH_INTERVAL must be a duration"},
		"JWKS refresh not a duration":    {map[string]string{"JWKS_REFRESH_INTERVAL": "600"}, "JWKS_REFRESH_INTERVAL must be a duration"},
		"CRL file and contents":          {map[string]string{"MTLS_CRL": "-----BEGIN X509 CRL-----\n"}, "set only one of MTLS_CRL_PATH, MTLS_CRL and MTLS_CRL_SECRET_ID"},
		"CRL file and secret":            {map[string]string{"MTLS_CRL_SECRET_ID": "ca-a2a/crl"}, "set only one of MTLS_CRL_PATH, MTLS_CRL and MTLS_CRL_SECRET_ID"},
		"CRL refresh too often":          {map[string]string{"MTLS_CRL_PATH": "", "MTLS_CRL_SECRET_ID": "ca-a2a/crl", "MTLS_CRL_REFRESH": "1s"}, "MTLS_CRL_REFRESH must be a duration from 5s to 1m0s"},
		"CRL refresh too rare":           {map[string]string{"MTLS_CRL_PATH": "", "MTLS_CRL_SECRET_ID": "ca-a2a/crl", "MTLS_CRL_REFRESH": "10m"}, "MTLS_CRL_REFRESH must be a duration"},
		"CRL refresh without a secret":   {map[string]string{"MTLS_CRL_REFRESH": "30s"}, "MTLS_CRL_REFRESH is set without MTLS_CRL_SECRET_ID"},
		"no extract workers":             {map[string]string{"EXTRACT_WORKERS": "0"}, "EXTRACT_WORKERS must be 1..64"},
		"extract timeout without unit":   {map[string]string{"EXTRACT_TIMEOUT": "20"}, "EXTRACT_TIMEOUT must be a duration from 1s to 1m30s"},
		"extract timeout too long":       {map[string]string{"EXTRACT_TIMEOUT": "5m"}, "EXTRACT_TIMEOUT must be"},
		"memory limit in MB":             {map[string]string{"EXTRACT_MEMORY_LIMIT": "256MB"}, "EXTRACT_MEMORY_LIMIT must be a size from 128MiB"},
		"memory limit below the floor":   {map[string]string{"EXTRACT_MEMORY_LIMIT": "64MiB"}, "EXTRACT_MEMORY_LIMIT must be a size from 128MiB"},
		"max bytes not a size":           {map[string]string{"EXTRACT_MAX_BYTES": "lots"}, "EXTRACT_MAX_BYTES must be a size"},
		"documents fill the memory":      {map[string]string{"EXTRACT_MAX_BYTES": "200MiB", "EXTRACT_MEMORY_LIMIT": "200MiB"}, "EXTRACT_MEMORY_LIMIT (200MiB) must exceed EXTRACT_MAX_BYTES (200MiB)"},
	}
	for name, tc := range tests {
		kv := base()
		for k, v := range tc.set {
			kv[k] = v
		}
		_, err := Load(env(kv))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// The archive settings: the forms that load, the ones refused with a
// message naming the variable, and never the password in a message or in
// the printed configuration.
func TestArchive(t *testing.T) {
	const secret = "hunter2-s3cret"
	tests := []struct {
		name string
		set  map[string]string
		want string // "" loads
	}{
		{"default sqlite", nil, ""},
		{"postgres verify-full, password variable", map[string]string{"ARCHIVE_DSN": "postgres://archivist@db.internal:5432/archive?sslmode=verify-full",
			"ARCHIVE_DB_PASSWORD": secret, "ARCHIVE_DB_CA_PATH": "/etc/ca-a2a/rds-global-bundle.pem"}, ""},
		{"postgresql scheme", map[string]string{"ARCHIVE_DSN": "postgresql://archivist@db.internal/archive", "ARCHIVE_DB_PASSWORD": secret}, ""},
		{"loopback without TLS", map[string]string{"ARCHIVE_DSN": "postgres://archivist:" + secret + "@127.0.0.1:5432/archive?sslmode=disable"}, ""},
		{"remote without verify-full", map[string]string{"ARCHIVE_DSN": "postgres://archivist@db.internal/archive?sslmode=require", "ARCHIVE_DB_PASSWORD": secret},
			"sslmode=require is refused for host db.internal"},
		{"two passwords", map[string]string{"ARCHIVE_DSN": "postgres://archivist:" + secret + "@db.internal/archive", "ARCHIVE_DB_PASSWORD": secret},
			"ARCHIVE_DSN carries a password and ARCHIVE_DB_PASSWORD is set too"},
		{"password for sqlite", map[string]string{"ARCHIVE_DB_PASSWORD": secret}, "ARCHIVE_DB_PASSWORD is set but ARCHIVE_DSN is sqlite://"},
		{"CA for sqlite", map[string]string{"ARCHIVE_DB_CA_PATH": "/ca.pem"}, "ARCHIVE_DB_CA_PATH is set but ARCHIVE_DSN is sqlite://"},
		{"unparsable URL with a password", map[string]string{"ARCHIVE_DSN": "postgres://archivist:" + secret + "@db internal/archive"}, "ARCHIVE_DSN is not a valid URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kv := base()
			for k, v := range tc.set {
				kv[k] = v
			}
			c, err := Load(env(kv))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, printed := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), c.Archive.Redacted()} {
					if strings.Contains(printed, secret) {
						t.Fatalf("the configuration prints the password: %s", printed)
					}
				}
				if c.Archive.DSN != kv["ARCHIVE_DSN"] && kv["ARCHIVE_DSN"] != "" || c.Archive.Password != kv["ARCHIVE_DB_PASSWORD"] || c.Archive.CAPath != kv["ARCHIVE_DB_CA_PATH"] {
					t.Fatalf("archive %#v from %v", c.Archive, tc.set)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestRevocationAndKeySettings(t *testing.T) {
	kv := base()
	delete(kv, "MTLS_CRL_PATH")
	kv["JWKS_REFRESH_INTERVAL"], kv["MTLS_CRL"] = "2m30s", "-----BEGIN X509 CRL-----\n"
	c, err := Load(env(kv))
	if err != nil {
		t.Fatal(err)
	}
	if c.JWKSRefresh != 150*time.Second || c.CRL.PEM != kv["MTLS_CRL"] || c.CRL.Path != "" || c.CRL.Variable() != "MTLS_CRL" {
		t.Fatalf("JWKSRefresh %s, CRL %+v", c.JWKSRefresh, c.CRL)
	}
	delete(kv, "MTLS_CRL")
	for refresh, want := range map[string]time.Duration{"": 0, "45s": 45 * time.Second} {
		kv["MTLS_CRL_SECRET_ID"], kv["MTLS_CRL_REFRESH"] = "ca-a2a/crl", refresh
		if c, err = Load(env(kv)); err != nil {
			t.Fatal(err)
		}
		// 0 is certload.DefaultCRLRefresh, applied where the secret is read.
		if c.CRL.SecretID != "ca-a2a/crl" || c.CRL.Refresh != want || c.CRL.Variable() != "MTLS_CRL_SECRET_ID" || len(c.Warnings()) != 0 {
			t.Fatalf("MTLS_CRL_REFRESH=%q: CRL %+v, warnings %v", refresh, c.CRL, c.Warnings())
		}
	}
	delete(kv, "MTLS_CRL_SECRET_ID")
	delete(kv, "MTLS_CRL_REFRESH")
	if c, err = Load(env(kv)); err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "no MTLS_CRL_PATH, MTLS_CRL or MTLS_CRL_SECRET_ID") {
		t.Errorf("no warning without a CRL: %q", w)
	}
}

func TestExtractSettings(t *testing.T) {
	kv := base()
	kv["EXTRACT_WORKERS"], kv["EXTRACT_TIMEOUT"], kv["EXTRACT_MEMORY_LIMIT"], kv["EXTRACT_MAX_BYTES"] = "2", "3s", "1GiB", "512KiB"
	c, err := Load(env(kv))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Extract{Workers: 2, Timeout: 3 * time.Second, MemoryLimit: 1 << 30, MaxBytes: 512 << 10}); c.Extract != want {
		t.Fatalf("extract settings %+v, want %+v", c.Extract, want)
	}
}

func TestWarnings(t *testing.T) {
	kv := base()
	kv["TOKEN_BINDING_ENABLED"], kv["TOKEN_BINDING_REQUIRED"], kv["MTLS_VERIFY_SERVER"] = "false", "false", "false"
	c, err := Load(env(kv))
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"MTLS_VERIFY_SERVER=false", "TOKEN_BINDING_ENABLED=false", "TOKEN_BINDING_REQUIRED=false"} {
		if !strings.Contains(w, want) {
			t.Errorf("no warning for %s in %q", want, w)
		}
	}
}
