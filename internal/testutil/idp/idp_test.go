package idp_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/testutil/idp"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
)

// certs writes a certgen certificates directory (the code behind
// "go run ./cmd/certgen --certs-dir DIR", called in-process).
func certs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	if err := certgen.Generate(certgen.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// client is a plain net/http client that presents leaf (nil: no
// certificate), trusts the project CA and verifies the provider by name
// while dialling 127.0.0.1.
func client(t *testing.T, certsDir string, leaf *tls.Certificate) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(certgen.BundlePath(certsDir))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: idp.ServerName, MinVersion: tls.VersionTLS12}
	if leaf != nil {
		cfg.Certificates = []tls.Certificate{*leaf}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func agentCert(t *testing.T, certsDir, name string) tls.Certificate {
	t.Helper()
	certPath, keyPath := certgen.LeafPaths(certsDir, name)
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type tokenResponse struct {
	status int
	body   map[string]any
}

func requestToken(t *testing.T, c *http.Client, tokenURL, clientID string) tokenResponse {
	t.Helper()
	resp, err := c.PostForm(tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}})
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatalf("token response %d is not JSON: %q", resp.StatusCode, data)
	}
	return tokenResponse{resp.StatusCode, body}
}

// segment decodes one part of a compact JWT, unverified: what matters here
// is what the provider put in, the verifier is tested in shared/binding.
func segment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a compact JWS (%d parts)", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func thumbprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func audiences(aud any) []string {
	switch v := aud.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, a := range v {
			s, _ := a.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func TestBoundToken(t *testing.T) {
	dir := certs(t)
	p := idp.Start(t, dir)
	if p.ServerName != idp.ServerName || !strings.HasPrefix(p.Issuer, "https://keycloak.ca-a2a.local:") || !strings.HasSuffix(p.Issuer, "/realms/ca-a2a") ||
		!strings.HasPrefix(p.Addr, "127.0.0.1:") || p.TokenURL != "https://"+p.Addr+"/realms/ca-a2a/protocol/openid-connect/token" ||
		p.JWKSURL != "https://"+p.Addr+"/realms/ca-a2a/protocol/openid-connect/certs" {
		t.Fatalf("endpoints: %+v", p)
	}

	for _, name := range []string{"lambda", "orchestrator"} {
		t.Run(name, func(t *testing.T) {
			leaf := agentCert(t, dir, name)
			r := requestToken(t, client(t, dir, &leaf), p.TokenURL, name)
			if r.status != http.StatusOK || r.body["token_type"] != "Bearer" || r.body["expires_in"] != 300.0 {
				t.Fatalf("token response %d: %v", r.status, r.body)
			}
			tok, _ := r.body["access_token"].(string)
			header, claims := segment(t, tok, 0), segment(t, tok, 1)
			if kid, _ := header["kid"].(string); kid == "" || header["alg"] != "ES256" {
				t.Errorf("header %v: want alg ES256 and a kid", header)
			}
			cnf, _ := claims["cnf"].(map[string]any)
			if got, want := cnf["x5t#S256"], thumbprint(leaf); got != want {
				t.Errorf("cnf.x5t#S256 = %v, want %s (the presented certificate)", got, want)
			}
			if !slices.Contains(audiences(claims["aud"]), "ca-a2a-agents") {
				t.Errorf("aud %v lacks ca-a2a-agents", claims["aud"])
			}
			if claims["iss"] != p.Issuer || claims["azp"] != name || claims["client_id"] != name {
				t.Errorf("iss/azp/client_id: %v %v %v", claims["iss"], claims["azp"], claims["client_id"])
			}
			iat, _ := claims["iat"].(float64)
			exp, _ := claims["exp"].(float64)
			if exp-iat != 300 || time.Since(time.Unix(int64(iat), 0)).Abs() > time.Minute {
				t.Errorf("iat %v exp %v: want a 300 s token issued now", iat, exp)
			}
		})
	}

	// The token's kid is published at the JWKS URL, and discovery carries
	// Keycloak's URL shapes.
	leaf := agentCert(t, dir, "lambda")
	c := client(t, dir, nil) // discovery and keys are public
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
			D   string `json:"d"`
		} `json:"keys"`
	}
	getJSON(t, c, p.JWKSURL, &jwks)
	kid, _ := segment(t, requestToken(t, client(t, dir, &leaf), p.TokenURL, "lambda").body["access_token"].(string), 0)["kid"].(string)
	if len(jwks.Keys) != 1 || jwks.Keys[0].Kid != kid || jwks.Keys[0].D != "" {
		t.Errorf("JWKS %+v: want exactly the public key %s", jwks, kid)
	}
	var disco map[string]any
	getJSON(t, c, "https://"+p.Addr+"/realms/ca-a2a/.well-known/openid-configuration", &disco)
	if disco["issuer"] != p.Issuer || disco["token_endpoint"] != p.Issuer+"/protocol/openid-connect/token" ||
		disco["jwks_uri"] != p.Issuer+"/protocol/openid-connect/certs" || disco["tls_client_certificate_bound_access_tokens"] != true {
		t.Errorf("discovery: %v", disco)
	}
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestRefused covers every certificate that must not authenticate as lambda.
func TestRefused(t *testing.T) {
	dir := certs(t)
	p := idp.Start(t, dir)
	caCert, caKey := certgen.CAPaths(dir)
	projectCA := pki.LoadCA(t, caCert, caKey)
	otherCA := pki.NewCA(t, "CA A2A Root CA") // same name, other key
	asTLS := func(l *pki.Leaf) *tls.Certificate { c := l.TLS(); return &c }
	extractor := agentCert(t, dir, "extractor")

	for _, tc := range []struct {
		name     string
		leaf     *tls.Certificate
		clientID string
	}{
		{"another agent's certificate", &extractor, "lambda"},
		{"no client certificate", nil, "lambda"},
		{"lambda's subject from another CA", asTLS(otherCA.Issue(t, "lambda")), "lambda"},
		{"lambda's subject without clientAuth", asTLS(projectCA.Issue(t, "lambda", pki.EKU(x509.ExtKeyUsageServerAuth))), "lambda"},
		{"expired lambda certificate", asTLS(projectCA.Issue(t, "lambda", pki.Validity(time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)))), "lambda"},
		{"an agent that is not a client", &extractor, "extractor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := requestToken(t, client(t, dir, tc.leaf), p.TokenURL, tc.clientID)
			if r.status != http.StatusUnauthorized && r.status != http.StatusBadRequest || r.body["error"] != "invalid_client" || r.body["access_token"] != nil {
				t.Fatalf("got %d %v, want invalid_client", r.status, r.body)
			}
		})
	}
}

func TestOptionsAndKeyReuse(t *testing.T) {
	dir := certs(t)
	state := filepath.Join(t.TempDir(), "idp")
	leaf := agentCert(t, dir, "orchestrator")

	first := idp.Start(t, dir, idp.TokenTTL(42*time.Second), idp.Clients("orchestrator"), idp.StateDir(state))
	r := requestToken(t, client(t, dir, &leaf), first.TokenURL, "orchestrator")
	if r.status != http.StatusOK || r.body["expires_in"] != 42.0 {
		t.Fatalf("TokenTTL: %d %v", r.status, r.body)
	}
	lambda := agentCert(t, dir, "lambda")
	if r := requestToken(t, client(t, dir, &lambda), first.TokenURL, "lambda"); r.body["error"] != "invalid_client" {
		t.Fatalf("lambda is not in Clients(...) yet got %d %v", r.status, r.body)
	}
	for path, want := range map[string]os.FileMode{state: 0o700, filepath.Join(state, "signing-key.jwk.json"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, want mode %o", path, err, want)
		}
	}

	// A second provider on the same state directory signs with the same key.
	second := idp.Start(t, dir, idp.StateDir(state))
	kid1, _ := first.SigningKey(t)
	kid2, _ := second.SigningKey(t)
	tok, _ := requestToken(t, client(t, dir, &leaf), second.TokenURL, "orchestrator").body["access_token"].(string)
	if kid1 == "" || kid1 != kid2 || segment(t, tok, 0)["kid"] != kid1 {
		t.Fatalf("signing key not reused: %q %q %v", kid1, kid2, segment(t, tok, 0)["kid"])
	}
}

// TestReloadsTLSMaterial: the provider follows a CA rotation without a
// restart: it trusts the next CA's leaves once the bundle holds it, serves
// its re-issued certificate on new connections, and refuses the old CA's
// leaves once it is retired.
func TestReloadsTLSMaterial(t *testing.T) {
	dir := certs(t)
	p := idp.Start(t, dir, idp.ReloadInterval(20*time.Millisecond))
	oldLambda := agentCert(t, dir, "lambda")
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	tokenFor := func(leaf tls.Certificate) int {
		c := client(t, dir, &leaf)
		defer c.Transport.(*http.Transport).CloseIdleConnections()
		return requestToken(t, c, p.TokenURL, "lambda").status
	}

	if err := certgen.RotateCA(certgen.RotateOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if err := certgen.Generate(certgen.Options{Dir: dir, Force: true, Agents: []string{"lambda", "keycloak"}}); err != nil {
		t.Fatal(err)
	}
	nextCert, nextKey := certgen.NextCAPaths(dir)
	next := pki.LoadCA(t, nextCert, nextKey).Cert
	newLambda := agentCert(t, dir, "lambda")
	eventually("a leaf of the next CA gets a token", func() bool { return tokenFor(newLambda) == http.StatusOK })
	if got := tokenFor(oldLambda); got != http.StatusOK {
		t.Fatalf("a leaf of the current CA during the overlap: %d", got)
	}
	eventually("the re-issued provider certificate is served", func() bool {
		resp, err := client(t, dir, nil).Get(p.JWKSURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return slices.Equal(resp.TLS.PeerCertificates[0].AuthorityKeyId, next.SubjectKeyId)
	})

	if err := certgen.RetireCA(certgen.RetireOptions{Dir: dir, Force: true}); err != nil {
		t.Fatal(err)
	}
	eventually("a leaf of the retired CA is refused", func() bool { return tokenFor(oldLambda) != http.StatusOK })
	if got := tokenFor(newLambda); got != http.StatusOK {
		t.Fatalf("a leaf of the remaining CA: %d", got)
	}

	// A key that does not match its certificate is not loaded; the
	// provider keeps serving what it had.
	_, keyPath := certgen.LeafPaths(dir, "keycloak")
	_, otherKey := certgen.LeafPaths(dir, "extractor")
	data, err := os.ReadFile(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually("the refusal in the provider's output", func() bool { return strings.Contains(p.Output(), "TLS material not reloaded") })
	if got := tokenFor(newLambda); got != http.StatusOK {
		t.Fatalf("after a refused reload: %d", got)
	}
}
