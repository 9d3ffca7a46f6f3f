package tokensource_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func source(t *testing.T, ca *pki.CA, leaf *pki.Leaf, tokenURL, clientID string) *tokensource.Source {
	t.Helper()
	cert, err := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tokensource.New(tokensource.Config{TokenURL: tokenURL, ClientID: clientID, Certificate: cert,
		ServerName: "keycloak.ca-a2a.local", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBoundTokenIsCached(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	lambda := ca.Issue(t, "lambda")
	s := source(t, ca, lambda, idp.TokenURL, "lambda")
	first, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		tok, err := s.Token()
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken != first.AccessToken {
			t.Fatal("cached token replaced while valid")
		}
	}
	if n := idp.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests for 51 calls, want 1", n)
	}
	// The token really is bound to this certificate and verifies.
	v, err := binding.NewVerifier(binding.Config{Issuer: tokens.Issuer, Audience: tokens.Audience,
		Keys: idp.KeySet(t, binding.KeySetOptions{}), BindingEnabled: true, BindingRequired: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), first.AccessToken, lambda.Cert); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	idp.TokenTTL = 31 * time.Second // inside the 30s margin after one second
	s := source(t, ca, ca.Issue(t, "lambda"), idp.TokenURL, "lambda")
	if _, err := s.Token(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := s.Token(); err != nil {
		t.Fatal(err)
	}
	if n := idp.TokenRequests(); n != 2 {
		t.Fatalf("%d token requests, want 2 (refresh within the expiry margin)", n)
	}
}

func TestInvalidateAndRotation(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	first := ca.Issue(t, "lambda")
	dir := t.TempDir()
	certPath, keyPath, caPath := pki.WriteFiles(t, dir, first, ca.PEM)
	files, err := certload.WatchFiles(certPath, keyPath, caPath, certload.Options{Usage: certload.UsageClient, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	s, err := tokensource.New(tokensource.Config{TokenURL: idp.TokenURL, ClientID: "lambda", Certificate: files, ServerName: "keycloak.ca-a2a.local", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(); err != nil {
		t.Fatal(err)
	}
	s.Invalidate()
	if _, err := s.Token(); err != nil {
		t.Fatal(err)
	}
	if idp.TokenRequests() != 2 {
		t.Fatalf("Invalidate did not drop the cache: %d requests", idp.TokenRequests())
	}
	// Rotate the certificate: the cached token is bound to the old one.
	second := ca.Issue(t, "lambda")
	pki.WriteFiles(t, dir, second, ca.PEM)
	if changed, err := files.Reload(); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	tok, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	if idp.TokenRequests() != 3 {
		t.Fatal("rotation did not drop the cached token")
	}
	v, _ := binding.NewVerifier(binding.Config{Issuer: tokens.Issuer, Audience: tokens.Audience,
		Keys: idp.KeySet(t, binding.KeySetOptions{}), BindingEnabled: true, BindingRequired: true, Logger: quiet})
	if _, err := v.Verify(t.Context(), tok.AccessToken, second.Cert); err != nil {
		t.Fatalf("new token not bound to the new certificate: %v", err)
	}
}

func TestFailures(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)

	t.Run("unbound token refused", func(t *testing.T) {
		idp.Unbound.Store(true)
		defer idp.Unbound.Store(false)
		_, err := source(t, ca, ca.Issue(t, "lambda"), idp.TokenURL, "lambda").Token()
		if !errors.Is(err, tokensource.ErrNotBound) || err.Error() != "tokensource: identity provider did not bind the token to this certificate" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong client certificate is invalid_client", func(t *testing.T) {
		_, err := source(t, ca, ca.Issue(t, "extractor"), idp.TokenURL, "lambda").Token()
		var te *tokensource.Error
		if !errors.As(err, &te) || te.Code != "invalid_client" || te.Transient {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("transient failures are retried", func(t *testing.T) {
		before := idp.TokenRequests()
		idp.FailTokens.Store(2)
		if _, err := source(t, ca, ca.Issue(t, "lambda"), idp.TokenURL, "lambda").Token(); err != nil {
			t.Fatal(err)
		}
		if n := idp.TokenRequests() - before; n != 3 {
			t.Fatalf("%d requests, want 3 (two 503 then success)", n)
		}
	})
	t.Run("endpoint down", func(t *testing.T) {
		_, err := source(t, ca, ca.Issue(t, "lambda"), "https://127.0.0.1:1/token", "lambda").Token()
		var te *tokensource.Error
		if !errors.As(err, &te) || te.Status != 0 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("identity provider with the wrong name", func(t *testing.T) {
		leaf := ca.Issue(t, "lambda")
		src, _ := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
		s, _ := tokensource.New(tokensource.Config{TokenURL: idp.TokenURL, ClientID: "lambda", Certificate: src, ServerName: "evil.ca-a2a.local", Logger: quiet})
		if _, err := s.Token(); err == nil {
			t.Fatal("token fetched from a server with the wrong identity")
		}
	})
	t.Run("plain http refused", func(t *testing.T) {
		if _, err := tokensource.New(tokensource.Config{TokenURL: "http://127.0.0.1/token", ClientID: "x"}); err == nil {
			t.Fatal("http token URL accepted")
		}
	})
}

// swapCRL is a CRLSource whose list the test replaces.
type swapCRL struct {
	r atomic.Pointer[certload.Revocations]
}

func (c *swapCRL) Revocations() *certload.Revocations { return c.r.Load() }

// TestRevokedProviderOnAKeptAliveConnection: once the CRL revokes the
// token endpoint's certificate, the next fetch does not reuse the
// connection opened before: it shakes hands again and is refused.
func TestRevokedProviderOnAKeptAliveConnection(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	lambda := ca.Issue(t, "lambda")
	cert, err := certload.FromPEM(lambda.CertPEM, lambda.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	crl := &swapCRL{}
	crl.r.Store(revocations(t, ca, nil))
	s, err := tokensource.New(tokensource.Config{TokenURL: idp.TokenURL, ClientID: "lambda", Certificate: cert,
		ServerName: "keycloak.ca-a2a.local", Logger: quiet, CRL: crl})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(); err != nil {
		t.Fatal(err)
	}
	crl.r.Store(revocations(t, ca, providerCert(t, idp, ca).SerialNumber))
	s.Invalidate()
	if _, err := s.Token(); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("token from a revoked provider: %v", err)
	}
}

// providerCert is the certificate the token endpoint presents.
func providerCert(t *testing.T, idp *tokens.IdP, ca *pki.CA) *x509.Certificate {
	t.Helper()
	u, err := url.Parse(idp.TokenURL)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, ServerName: "keycloak.ca-a2a.local"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// revocations is ca's CRL revoking serials, as an agent would hold it.
func revocations(t *testing.T, ca *pki.CA, serials ...*big.Int) *certload.Revocations {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, s := range serials {
		if s != nil {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
		}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()),
		ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := certload.ParseCRLs(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), "test", []*x509.Certificate{ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
