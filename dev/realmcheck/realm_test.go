package realmcheck

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
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
	Protocol                  string            `json:"protocol"`
	PublicClient              bool              `json:"publicClient"`
	BearerOnly                bool              `json:"bearerOnly"`
	Secret                    *string           `json:"secret"`
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

// The agents certgen issues by default; every one but the client itself must
// be refused by a client's subject.
var agents = []string{"orchestrator", "extractor", "validator", "archivist", "lambda", "keycloak"}

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
		t.Fatalf("realm settings: realm=%q enabled=%v sslRequired=%q accessTokenLifespan=%d", r.Realm, r.Enabled, r.SSLRequired, r.AccessTokenLifespan)
	}

	// Real certgen output: the subjects below are the ones Keycloak will see.
	dir := filepath.Join(t.TempDir(), "certs")
	if err := certgen.Generate(certgen.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	caPath, _ := certgen.CAPaths(dir)
	ca := readCert(t, caPath)
	// A CA rotation keeps the CA's name (Keycloak pins it), so both CAs of
	// the overlap must match x509.casubjectdn.
	if err := certgen.RotateCA(certgen.RotateOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	nextPath, _ := certgen.NextCAPaths(dir)
	cas := []pkix.Name{ca.Subject, readCert(t, nextPath).Subject}
	subjects := map[string]pkix.Name{}
	for _, a := range agents {
		certPath, _ := certgen.LeafPaths(dir, a)
		subjects[a] = readCert(t, certPath).Subject
	}

	var ids []string
	for _, c := range r.Clients {
		ids = append(ids, c.ClientID)
		t.Run(c.ClientID, func(t *testing.T) { checkClient(t, c, subjects, cas) })
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"lambda", "orchestrator"}) {
		t.Fatalf("clients %v, want exactly lambda and orchestrator (the callers)", ids)
	}
}

func checkClient(t *testing.T, c client, subjects map[string]pkix.Name, caSubjects []pkix.Name) {
	if !c.Enabled || c.Protocol != "openid-connect" || c.PublicClient || c.BearerOnly || c.Secret != nil {
		t.Errorf("want an enabled confidential openid-connect client without a secret: %+v", c)
	}
	if c.ClientAuthenticatorType != "client-x509" {
		t.Errorf("clientAuthenticatorType %q, want client-x509", c.ClientAuthenticatorType)
	}
	if !c.ServiceAccountsEnabled || c.StandardFlowEnabled || c.ImplicitFlowEnabled || c.DirectAccessGrantsEnabled {
		t.Errorf("flows: want client credentials only, got serviceAccounts=%v standard=%v implicit=%v directAccess=%v",
			c.ServiceAccountsEnabled, c.StandardFlowEnabled, c.ImplicitFlowEnabled, c.DirectAccessGrantsEnabled)
	}
	if c.Attributes["tls.client.certificate.bound.access.tokens"] != "true" {
		t.Error("tokens are not certificate-bound (tls.client.certificate.bound.access.tokens)")
	}
	audience := false
	for _, m := range c.ProtocolMappers {
		audience = audience || m.ProtocolMapper == "oidc-audience-mapper" &&
			m.Config["included.custom.audience"] == "ca-a2a-agents" && m.Config["access.token.claim"] == "true"
	}
	if !audience {
		t.Error("no oidc-audience-mapper putting ca-a2a-agents in the access token")
	}

	// Keycloak compares x509.subjectdn with the first certificate of the
	// chain: as a regular expression over Java's getSubjectDN().getName()
	// when x509.allow.regex.pattern.comparison is true (deprecated, to be
	// removed in Keycloak 27, and a warning on every authentication), or as
	// a distinguished name, canonical form against canonical form, when it
	// is false. The realm uses the exact comparison.
	if got := c.Attributes["x509.allow.regex.pattern.comparison"]; got != "false" {
		t.Errorf("x509.allow.regex.pattern.comparison = %q, want \"false\" (exact subject DN)", got)
	}
	want, err := parseDN(c.Attributes["x509.subjectdn"])
	if err != nil {
		t.Fatalf("x509.subjectdn: %v", err)
	}
	for agent, subject := range subjects {
		if got, ok := canonical(subject) == want, agent == c.ClientID; got != ok {
			t.Errorf("x509.subjectdn %q against %s's certificate %q: match=%v, want %v", c.Attributes["x509.subjectdn"], agent, subject, got, ok)
		}
	}
	// Keycloak 26.7 and later also check that the chain ends at a CA of
	// this subject in its trust store; older versions keep the attribute
	// and ignore it. Every CA of a rotation carries the same subject.
	caDN, err := parseDN(c.Attributes["x509.casubjectdn"])
	if err != nil {
		t.Fatalf("x509.casubjectdn: %v", err)
	}
	for i, s := range caSubjects {
		if caDN != canonical(s) {
			t.Errorf("x509.casubjectdn %q is not the subject %q of certgen's CA %d (1: the first CA, 2: the next one after rotate-ca)", c.Attributes["x509.casubjectdn"], s, i+1)
		}
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: not PEM", path)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

var attrTypes = map[string]string{"2.5.4.3": "cn", "2.5.4.10": "o", "2.5.4.11": "ou", "2.5.4.6": "c", "2.5.4.7": "l", "2.5.4.8": "st"}

// canonical renders a certificate name as parseDN renders a configured one:
// most specific RDN first, lower-case types and values, one attribute per
// RDN (certgen writes no multi-valued RDNs).
func canonical(n pkix.Name) string {
	seq := n.ToRDNSequence()
	var parts []string
	for i := len(seq) - 1; i >= 0; i-- {
		for _, atv := range seq[i] {
			typ, ok := attrTypes[atv.Type.String()]
			if !ok {
				typ = atv.Type.String()
			}
			parts = append(parts, typ+"="+strings.ToLower(fmt.Sprint(atv.Value)))
		}
	}
	return strings.Join(parts, ",")
}

// parseDN reads an RFC 4514 distinguished name the way Java's X500Principal
// canonical form compares it: types and values case-insensitive, blanks
// around separators ignored. Escapes and multi-valued RDNs are refused: the
// realm's names need neither.
func parseDN(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty")
	}
	if strings.ContainsAny(s, `\+;"<>#`) {
		return "", fmt.Errorf("%q: escapes, multi-valued RDNs and ';' separators are not used here", s)
	}
	var parts []string
	for _, rdn := range strings.Split(s, ",") {
		typ, val, ok := strings.Cut(rdn, "=")
		typ, val = strings.ToLower(strings.TrimSpace(typ)), strings.ToLower(strings.TrimSpace(val))
		if !ok || typ == "" || val == "" {
			return "", fmt.Errorf("%q: RDN %q is not TYPE=VALUE", s, rdn)
		}
		if !slices.Contains([]string{"cn", "o", "ou", "c", "l", "st"}, typ) {
			return "", fmt.Errorf("%q: unexpected attribute type %q", s, typ)
		}
		parts = append(parts, typ+"="+val)
	}
	return strings.Join(parts, ","), nil
}

// TestParseDN pins the comparison the realm test relies on.
func TestParseDN(t *testing.T) {
	lambda := pkix.Name{CommonName: "lambda.ca-a2a.local", Organization: []string{"CA A2A"}, Country: []string{"FR"}}
	for _, tc := range []struct {
		dn    string
		match bool
	}{
		{"CN=lambda.ca-a2a.local,O=CA A2A,C=FR", true},
		{"cn=LAMBDA.ca-a2a.local, o=CA A2A, c=fr", true},
		{"C=FR,O=CA A2A,CN=lambda.ca-a2a.local", false}, // order matters
		{"CN=lambda.ca-a2a.local,O=CA A2A", false},
		{"CN=lambda.ca-a2a.local.evil.com,O=CA A2A,C=FR", false},
		{"CN=xlambda.ca-a2a.local,O=CA A2A,C=FR", false},
	} {
		got, err := parseDN(tc.dn)
		if err != nil {
			t.Fatalf("%q: %v", tc.dn, err)
		}
		if (got == canonical(lambda)) != tc.match {
			t.Errorf("%q vs %q: match=%v, want %v", tc.dn, canonical(lambda), !tc.match, tc.match)
		}
	}
	for _, bad := range []string{"", "^CN=lambda\\.ca-a2a\\.local$", "CN=a+O=b", "CN", "X=1"} {
		if _, err := parseDN(bad); err == nil {
			t.Errorf("%q parsed; want an error (a regular expression is not a DN)", bad)
		}
	}
}
