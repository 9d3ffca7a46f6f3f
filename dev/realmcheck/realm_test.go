package realmcheck

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/repo"
)

type realm struct {
	Realm               string   `json:"realm"`
	Enabled             bool     `json:"enabled"`
	SSLRequired         string   `json:"sslRequired"`
	AccessTokenLifespan int      `json:"accessTokenLifespan"`
	Clients             []client `json:"clients"`
}

type client struct {
	ClientID                  string            `json:"clientId"`
	Enabled                   bool              `json:"enabled"`
	PublicClient              bool              `json:"publicClient"`
	ClientAuthenticatorType   string            `json:"clientAuthenticatorType"`
	ServiceAccountsEnabled    bool              `json:"serviceAccountsEnabled"`
	StandardFlowEnabled       bool              `json:"standardFlowEnabled"`
	ImplicitFlowEnabled       bool              `json:"implicitFlowEnabled"`
	DirectAccessGrantsEnabled bool              `json:"directAccessGrantsEnabled"`
	Attributes                map[string]string `json:"attributes"`
	ProtocolMappers           []struct {
		ProtocolMapper string            `json:"protocolMapper"`
		Config         map[string]string `json:"config"`
	} `json:"protocolMappers"`
}

func TestRealm(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repo.Root(t), "infra", "keycloak", "realm-ca-a2a.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r realm
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("realm is not valid JSON: %v", err)
	}
	if r.Realm != "ca-a2a" || !r.Enabled || r.SSLRequired != "all" || r.AccessTokenLifespan != 300 {
		t.Fatalf("realm settings: %+v", r)
	}
	ca := pki.NewCA(t, "CA A2A Root CA")
	agents := []string{"lambda", "orchestrator", "extractor", "validator", "archivist", "keycloak"}
	seen := map[string]bool{}
	for _, c := range r.Clients {
		seen[c.ClientID] = true
		if !c.Enabled || c.PublicClient || c.ClientAuthenticatorType != "client-x509" || !c.ServiceAccountsEnabled ||
			c.StandardFlowEnabled || c.ImplicitFlowEnabled || c.DirectAccessGrantsEnabled {
			t.Errorf("%s: flows or authentication wrong: %+v", c.ClientID, c)
		}
		if c.Attributes["tls.client.certificate.bound.access.tokens"] != "true" {
			t.Errorf("%s: tokens are not certificate-bound", c.ClientID)
		}
		audience := false
		for _, m := range c.ProtocolMappers {
			audience = audience || (m.ProtocolMapper == "oidc-audience-mapper" && m.Config["included.custom.audience"] == "ca-a2a-agents" && m.Config["access.token.claim"] == "true")
		}
		if !audience {
			t.Errorf("%s: no audience mapper for ca-a2a-agents", c.ClientID)
		}
		// The subject pattern admits exactly this client's certgen subject.
		if c.Attributes["x509.allow.regex.pattern.comparison"] != "true" {
			t.Errorf("%s: subject DN is not compared as a pattern", c.ClientID)
		}
		re, err := regexp.Compile(c.Attributes["x509.subjectdn"])
		if err != nil {
			t.Fatalf("%s: subject pattern: %v", c.ClientID, err)
		}
		for _, a := range agents {
			subject := ca.Issue(t, a).Cert.Subject.String()
			if got, want := re.MatchString(subject), a == c.ClientID; got != want {
				t.Errorf("%s: pattern %q on %q = %v, want %v", c.ClientID, re, subject, got, want)
			}
		}
		for _, evil := range []string{"CN=lambda.ca-a2a.local.evil.com,O=CA A2A,C=FR", "CN=xlambda.ca-a2a.local,O=CA A2A,C=FR", "CN=lambdaXca-a2a.local,O=CA A2A,C=FR"} {
			if c.ClientID == "lambda" && re.MatchString(evil) {
				t.Errorf("lambda pattern admits %q", evil)
			}
		}
	}
	if !seen["lambda"] || !seen["orchestrator"] {
		t.Fatalf("clients lambda and orchestrator are required, have %v", seen)
	}
}
