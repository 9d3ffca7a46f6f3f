// Package tokens is an in-process token issuer for tests that only need
// signed tokens: it mints JWTs with RSA and ECDSA keys and serves their JWKS
// over HTTPS on 127.0.0.1, counting fetches and able to go down on demand.
package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// Issuer and Audience are the values the agents expect by default.
const (
	Issuer   = agentapi.DefaultIssuer
	Audience = agentapi.DefaultAudience
)

// Key is a signing key published in the JWKS.
type Key struct {
	KID    string
	Alg    string
	Signer crypto.Signer
}

// IdP mints tokens and serves the JWKS.
type IdP struct {
	RSA, EC *Key
	// JWKSURL is https://127.0.0.1:PORT/certs; the server presents a
	// keycloak.ca-a2a.local certificate from the test CA.
	JWKSURL string
	// Client verifies the JWKS server as the agents do.
	Client *http.Client

	// TokenURL is the token endpoint, https://127.0.0.1:PORT/token: client
	// credentials with tls_client_auth, client_id must name the presented
	// certificate's agent.
	TokenURL string
	// TokenTTL is the lifetime of issued tokens (default 5 minutes).
	TokenTTL time.Duration
	// Unbound makes the token endpoint issue tokens without cnf.
	Unbound atomic.Bool
	// FailTokens makes the next N token requests answer 503.
	FailTokens atomic.Int32

	fetches   atomic.Int32
	tokenReqs atomic.Int32
	down      atomic.Bool
	delay     atomic.Int64 // nanoseconds added to each JWKS answer
	mu        sync.Mutex
	keys      []*Key
}

// New starts a JWKS server whose certificate is issued by ca.
func New(t testing.TB, ca *pki.CA) *IdP {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &IdP{
		RSA: &Key{KID: "rsa-1", Alg: "RS256", Signer: rsaKey},
		EC:  &Key{KID: "ec-1", Alg: "ES256", Signer: ecKey},
	}
	p.keys = []*Key{p.RSA, p.EC}

	kc := ca.Issue(t, "keycloak")
	src, err := certload.FromPEM(kc.CertPEM, kc.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/certs", p.serveJWKS)
	mux.HandleFunc("POST /token", p.serveToken)
	srv := &http.Server{Handler: mux, TLSConfig: certload.ServerConfig(src, agentapi.AuthorizeAny(), certload.ServerOptions{}), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	p.JWKSURL = "https://" + ln.Addr().String() + "/certs"
	p.TokenURL = "https://" + ln.Addr().String() + "/token"

	lambda := ca.Issue(t, "lambda")
	csrc, err := certload.FromPEM(lambda.CertPEM, lambda.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: certload.ClientConfig(csrc, agentapi.AuthorizeAgent(agentapi.Keycloak), certload.ClientOptions{})}
	t.Cleanup(tr.CloseIdleConnections)
	p.Client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return p
}

// Fetches returns how many times the JWKS was served.
func (p *IdP) Fetches() int { return int(p.fetches.Load()) }

// SetDown makes the JWKS endpoint answer 503 (true) or serve again (false).
func (p *IdP) SetDown(down bool) { p.down.Store(down) }

// SetDelay delays every JWKS answer.
func (p *IdP) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// AddKey publishes a new key (a rotation at the identity provider).
func (p *IdP) AddKey(t testing.TB, kid string) *Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := &Key{KID: kid, Alg: "ES256", Signer: k}
	p.mu.Lock()
	p.keys = append(p.keys, key)
	p.mu.Unlock()
	return key
}

// RemoveKey stops publishing the key kid (the identity provider withdraws
// it).
func (p *IdP) RemoveKey(kid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = slices.DeleteFunc(p.keys, func(k *Key) bool { return k.KID == kid })
}

// PublishKey publishes key, replacing any key published under its kid.
func (p *IdP) PublishKey(key *Key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(slices.DeleteFunc(p.keys, func(k *Key) bool { return k.KID == key.KID }), key)
}

func (p *IdP) serveJWKS(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	if d := time.Duration(p.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	if p.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	p.mu.Lock()
	keys := append([]*Key(nil), p.keys...)
	p.mu.Unlock()
	set := jwkset.JWKSMarshal{}
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.Signer.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.KID, ALG: jwkset.ALG(k.Alg), USE: jwkset.UseSig,
		}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// TokenRequests returns how many token requests were answered.
func (p *IdP) TokenRequests() int { return int(p.tokenReqs.Load()) }

func (p *IdP) serveToken(w http.ResponseWriter, r *http.Request) {
	p.tokenReqs.Add(1)
	if p.FailTokens.Load() > 0 {
		p.FailTokens.Add(-1)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	oauthErr := func(code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		oauthErr("invalid_request")
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		oauthErr("invalid_client")
		return
	}
	cert := r.TLS.PeerCertificates[0]
	if id, err := agentapi.Identity(cert); err != nil || id != r.PostForm.Get("client_id") || r.PostForm.Has("client_secret") {
		oauthErr("invalid_client")
		return
	}
	ttl := p.TokenTTL
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	claims := Claims(cert)
	claims["exp"] = time.Now().Add(ttl).Unix()
	claims["azp"], claims["client_id"] = r.PostForm.Get("client_id"), r.PostForm.Get("client_id")
	if p.Unbound.Load() {
		delete(claims, "cnf")
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = p.EC.KID
	signed, err := tok.SignedString(p.EC.Signer)
	if err != nil {
		http.Error(w, "sign", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": signed, "token_type": "Bearer", "expires_in": int(ttl.Seconds())})
}

// Claims returns valid claims for a token bound to cert (nil: unbound).
func Claims(cert *x509.Certificate) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss":       Issuer,
		"aud":       []string{Audience},
		"sub":       "service-account-lambda",
		"azp":       "lambda",
		"client_id": "lambda",
		"iat":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
	}
	if cert != nil {
		c["cnf"] = map[string]string{"x5t#S256": binding.Thumbprint(cert)}
	}
	return c
}

// Mint signs claims with key, with header overrides (a nil value deletes).
func (p *IdP) Mint(t testing.TB, key *Key, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	method := jwt.GetSigningMethod(key.Alg)
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = key.KID
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// KeySet returns a binding.KeySet on this IdP's JWKS, closed at cleanup.
func (p *IdP) KeySet(t testing.TB, opts binding.KeySetOptions) *binding.KeySet {
	t.Helper()
	if opts.Client == nil {
		opts.Client = p.Client
	}
	ks, err := binding.NewKeySet(t.Context(), p.JWKSURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ks.Close)
	return ks
}

// Refuse answers a request the binding middleware refused, for tests that
// run the middleware without the agent server: 401 and a JSON-RPC error
// -32010 carrying binding.Reason and, in data.reason, binding.Code. (The
// agents' own answer, with its WWW-Authenticate challenge, is the agent
// server's and tested there.)
func Refuse(w http.ResponseWriter, _ *http.Request, err error) {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": agentapi.CodeUnauthenticated, "message": binding.Reason(err),
			"data": agentapi.RefusalData{Reason: binding.Code(err)}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(body)
}
