package tokensource_test

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/testutil/idp"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

func load(t *testing.T, dir, name string) certload.Source {
	t.Helper()
	cert, key := certgen.LeafPaths(dir, name)
	ca, _ := certgen.CAPaths(dir)
	src, closeFn, err := certload.Load(certload.Config{CertPath: cert, KeyPath: key, CAPath: ca}, certload.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	return src
}

// TestInteropWithRealIdentityProvider is the seed's open TODO, for real:
// a token from the npm oidc-provider over mTLS is accepted with the
// certificate it was issued to and refused (401) with another one.
func TestInteropWithRealIdentityProvider(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := certgen.Generate(certgen.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	provider := idp.Start(t, dir)
	lambda, extractor := load(t, dir, "lambda"), load(t, dir, "extractor")

	ts, err := tokensource.New(tokensource.Config{TokenURL: provider.TokenURL, ClientID: "lambda", Certificate: lambda,
		ServerName: idp.ServerName, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(); err != nil || ts.Fetches() != 1 {
		t.Fatalf("second Token() fetched again (%d fetches, %v)", ts.Fetches(), err)
	}

	// An agent verifying against the provider's JWKS.
	orch := load(t, dir, "orchestrator")
	jwksClient := &http.Client{Transport: &http.Transport{TLSClientConfig: certload.ClientConfig(orch, certload.AuthorizeDNSName(idp.ServerName), certload.ClientOptions{ServerName: idp.ServerName})}}
	keys, err := binding.NewKeySet(t.Context(), provider.JWKSURL, binding.KeySetOptions{Client: jwksClient, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	v, err := binding.NewVerifier(binding.Config{Issuer: provider.Issuer, Audience: "ca-a2a-agents", Keys: keys,
		BindingEnabled: true, BindingRequired: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := binding.FromContext(r.Context())
		_, _ = io.WriteString(w, a.Caller)
	}), tokens.Refuse), TLSConfig: certload.ServerConfig(orch, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true}), ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	call := func(as certload.Source) (int, string) {
		tr := &http.Transport{TLSClientConfig: certload.ClientConfig(as, agentapi.AuthorizeAgent(agentapi.Orchestrator), certload.ClientOptions{})}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPost, "https://"+ln.Addr().String()+"/message", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := call(lambda); code != 200 || body != "lambda" {
		t.Fatalf("own certificate: %d %s", code, body)
	}
	if code, body := call(extractor); code != 401 || !strings.Contains(body, "token is not bound to the presented certificate") {
		t.Fatalf("replayed with another certificate: %d %s", code, body)
	}

	// The provider refuses a certificate that is not the client's.
	wrong, _ := tokensource.New(tokensource.Config{TokenURL: provider.TokenURL, ClientID: "lambda", Certificate: extractor,
		ServerName: idp.ServerName, Logger: quiet})
	_, err = wrong.Token()
	var te *tokensource.Error
	if !errors.As(err, &te) || te.Code != "invalid_client" {
		t.Fatalf("another agent's certificate as lambda: %v", err)
	}
	// And it must present the expected identity.
	impostor, _ := tokensource.New(tokensource.Config{TokenURL: provider.TokenURL, ClientID: "lambda", Certificate: lambda,
		ServerName: "orchestrator.ca-a2a.local", Logger: quiet})
	if _, err := impostor.Token(); err == nil {
		t.Fatal("token fetched from a server that is not the identity provider")
	}
}
