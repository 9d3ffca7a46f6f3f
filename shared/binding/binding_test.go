package binding_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/internal/testutil/ci"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/poll"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newVerifier(t *testing.T, ks *binding.KeySet, mod func(*binding.Config)) *binding.Verifier {
	t.Helper()
	cfg := binding.Config{Issuer: tokens.Issuer, Audience: tokens.Audience, Keys: ks,
		BindingEnabled: true, BindingRequired: true, Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	v, err := binding.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// agentServer serves "ok" behind the middleware over the real mTLS config,
// as an agent's /message does.
func agentServer(t *testing.T, ca *pki.CA, v *binding.Verifier) string {
	t.Helper()
	leaf := ca.Issue(t, "orchestrator")
	src, err := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, _ := binding.FromContext(r.Context())
			_, _ = io.WriteString(w, "ok "+a.Caller)
		}), tokens.Refuse),
		TLSConfig:         certload.ServerConfig(src, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return "https://" + ln.Addr().String() + "/message"
}

func clientFor(t *testing.T, ca *pki.CA, leaf *pki.Leaf) *http.Client {
	t.Helper()
	src, err := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: certload.ClientConfig(src, agentapi.AuthorizeAgent(agentapi.Orchestrator), certload.ClientOptions{})}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// unsigned builds a token from header and claims with a signature of
// zeros: for the refusals that come before any signature check.
func unsigned(header map[string]any, claims jwt.MapClaims) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." +
		base64.RawURLEncoding.EncodeToString(make([]byte, 64))
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for key, val := range c {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// TestRejections is one table over every rejection of the authentication
// chain (docs/contract.md, Authentication),
// each case named after the attack, observed over real mTLS.
func TestRejections(t *testing.T) {
	ca := pki.NewCA(t, "CA A2A Root CA")
	idp := tokens.New(t, ca)
	v := newVerifier(t, idp.KeySet(t, binding.KeySetOptions{}), nil)
	url := agentServer(t, ca, v)

	lambda := ca.Issue(t, "lambda")
	extractor := ca.Issue(t, "extractor")
	client := clientFor(t, ca, lambda)
	bound := tokens.Claims(lambda.Cert)
	now := time.Now()

	rsaPub := idp.RSA.Signer.Public().(*rsa.PublicKey)
	pubDER, _ := x509.MarshalPKIXPublicKey(rsaPub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs256 := jwt.NewWithClaims(jwt.SigningMethodHS256, bound)
	hs256.Header["kid"] = idp.RSA.KID
	hsToken, _ := hs256.SignedString(pubPEM)
	noneTok := jwt.NewWithClaims(jwt.SigningMethodNone, bound)
	noneTok.Header["kid"] = idp.RSA.KID
	noneToken, _ := noneTok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	good := idp.Mint(t, idp.EC, bound, nil)
	parts := strings.Split(good, ".")
	evil, _ := json.Marshal(with(bound, "sub", "admin"))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(evil) + "." + parts[2]
	// A key the JWKS does not hold, claiming the kid of one it does.
	rogue := tokens.New(t, ca)
	forged := rogue.Mint(t, &tokens.Key{KID: idp.EC.KID, Alg: "ES256", Signer: rogue.EC.Signer}, bound, nil)

	tests := []struct {
		name   string
		header []string // Authorization header values
		path   string
		status int
		reason string // in the message
		code   string // data.reason
	}{
		{"accepted ES256 bound token", []string{"Bearer " + good}, "", 200, "", ""},
		{"accepted RS256 bound token", []string{"Bearer " + idp.Mint(t, idp.RSA, bound, nil)}, "", 200, "", ""},
		{"accepted lower-case scheme", []string{"bearer " + good}, "", 200, "", ""},
		{"accepted nbf within leeway", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "nbf", now.Add(30*time.Second).Unix()), nil)}, "", 200, "", ""},
		{"no token", nil, "", 401, "missing bearer token", "missing_token"},
		{"token in query string", nil, "?access_token=" + good, 401, "missing bearer token", "missing_token"},
		{"basic scheme", []string{"Basic " + good}, "", 401, "missing bearer token", "missing_token"},
		{"two authorization headers", []string{"Bearer " + good, "Bearer " + good}, "", 401, "missing bearer token", "missing_token"},
		{"garbage token", []string{"Bearer not.a.jwt"}, "", 401, "token is malformed", "malformed_token"},
		{"alg none", []string{"Bearer " + noneToken}, "", 401, "invalid", "alg_not_allowed"},
		{"HS256 signed with the RSA public key", []string{"Bearer " + hsToken}, "", 401, "invalid", "alg_not_allowed"},
		{"ES256 token naming the RSA kid", []string{"Bearer " + idp.Mint(t, &tokens.Key{KID: idp.RSA.KID, Alg: "ES256", Signer: idp.EC.Signer}, bound, nil)}, "", 401, "invalid", "alg_not_allowed"},
		{"PS256 token against an RS256 key", []string{"Bearer " + idp.Mint(t, &tokens.Key{KID: idp.RSA.KID, Alg: "PS256", Signer: idp.RSA.Signer}, bound, nil)}, "", 401, "invalid", "alg_not_allowed"},
		{"forged signature with a known kid", []string{"Bearer " + forged}, "", 401, "signature is invalid", "bad_signature"},
		{"tampered payload", []string{"Bearer " + tampered}, "", 401, "signature is invalid", "bad_signature"},
		{"no kid", []string{"Bearer " + idp.Mint(t, idp.EC, bound, map[string]any{"kid": nil})}, "", 401, "invalid", "header_refused"},
		{"unknown kid", []string{"Bearer " + idp.Mint(t, &tokens.Key{KID: "nope", Alg: "ES256", Signer: idp.EC.Signer}, bound, nil)}, "", 401, "unknown key", "unknown_kid"},
		{"jku injection", []string{"Bearer " + idp.Mint(t, idp.EC, bound, map[string]any{"jku": "https://evil.example/jwks"})}, "", 401, "invalid", "header_refused"},
		{"x5u injection", []string{"Bearer " + idp.Mint(t, idp.EC, bound, map[string]any{"x5u": "https://evil.example/cert"})}, "", 401, "invalid", "header_refused"},
		{"embedded jwk", []string{"Bearer " + idp.Mint(t, idp.EC, bound, map[string]any{"jwk": map[string]string{"kty": "EC"}})}, "", 401, "invalid", "header_refused"},
		{"x5c injection", []string{"Bearer " + idp.Mint(t, idp.EC, bound, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(extractor.Cert.Raw)}})}, "", 401, "invalid", "header_refused"},
		{"unknown crit", []string{"Bearer " + idp.Mint(t, idp.EC, bound, map[string]any{"crit": []string{"exp"}})}, "", 401, "invalid", "header_refused"},
		{"expired", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "exp", now.Add(-time.Second).Unix()), nil)}, "", 401, "token expired", "expired"},
		{"expired within the nbf leeway", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "exp", now.Add(-30*time.Second).Unix()), nil)}, "", 401, "token expired", "expired"},
		{"missing exp", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "exp", nil), nil)}, "", 401, "required claim", "malformed_token"},
		{"nbf in the future", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "nbf", now.Add(2*time.Minute).Unix()), nil)}, "", 401, "not valid yet", "not_yet_valid"},
		{"iat in the future", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "iat", now.Add(2*time.Minute).Unix()), nil)}, "", 401, "not valid yet", "not_yet_valid"},
		{"wrong issuer", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "iss", "https://evil.example/realms/ca-a2a"), nil)}, "", 401, "wrong issuer", "bad_issuer"},
		{"wrong audience", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "aud", "account"), nil)}, "", 401, "wrong audience", "bad_audience"},
		{"no cnf", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "cnf", nil), nil)}, "", 401, "not certificate-bound", "unbound_token"},
		{"empty cnf", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "cnf", map[string]string{}), nil)}, "", 401, "not certificate-bound", "unbound_token"},
		{"cnf not an object", []string{"Bearer " + idp.Mint(t, idp.EC, with(bound, "cnf", "x"), nil)}, "", 401, "malformed", "malformed_token"},
		{"token bound to another cert", []string{"Bearer " + idp.Mint(t, idp.EC, tokens.Claims(extractor.Cert), nil)}, "", 401, "token is not bound to the presented certificate", "binding_mismatch"},
		{"algorithm jwt does not know", []string{"Bearer " + unsigned(map[string]any{"alg": "XYZ", "kid": idp.EC.KID}, bound)}, "", 401, "signature is invalid", "alg_not_allowed"},
		{"no algorithm", []string{"Bearer " + unsigned(map[string]any{"kid": idp.EC.KID}, bound)}, "", 401, "token is malformed", "malformed_token"},
		{"header not JSON", []string{"Bearer " + base64.RawURLEncoding.EncodeToString([]byte("{")) + "." + parts[1] + "." + parts[2]}, "", 401, "token is malformed", "malformed_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, url+tc.path, strings.NewReader("{}"))
			for _, h := range tc.header {
				req.Header.Add("Authorization", h)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				if string(body) != "ok lambda" {
					t.Fatalf("body %q", body)
				}
				return
			}
			var rpc struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
					Data    struct {
						Reason string `json:"reason"`
					} `json:"data"`
				} `json:"error"`
				ID json.RawMessage `json:"id"`
			}
			if err := json.Unmarshal(body, &rpc); err != nil {
				t.Fatalf("body is not JSON-RPC: %s", body)
			}
			if rpc.Error.Code != -32010 || string(rpc.ID) != "null" {
				t.Fatalf("error %+v id %s", rpc.Error, rpc.ID)
			}
			if rpc.Error.Data.Reason != tc.code {
				t.Fatalf("reason code %q, want %q (message %q)", rpc.Error.Data.Reason, tc.code, rpc.Error.Message)
			}
			if !strings.Contains(rpc.Error.Message, tc.reason) {
				t.Fatalf("message %q, want it to contain %q", rpc.Error.Message, tc.reason)
			}
		})
	}
}

// TestReplayWithAnotherCertificate is the seed's open TODO: a token obtained
// by the Lambda, replayed by a client holding another CA-issued certificate.
func TestReplayWithAnotherCertificate(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	url := agentServer(t, ca, newVerifier(t, idp.KeySet(t, binding.KeySetOptions{}), nil))
	lambda, extractor := ca.Issue(t, "lambda"), ca.Issue(t, "extractor")
	token := idp.Mint(t, idp.RSA, tokens.Claims(lambda.Cert), nil)
	for _, tc := range []struct {
		who  *pki.Leaf
		want int
	}{{lambda, 200}, {extractor, 401}, {lambda, 200}} {
		req, _ := http.NewRequest(http.MethodPost, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := clientFor(t, ca, tc.who).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("%s: status %d, want %d", tc.who.Cert.Subject.CommonName, resp.StatusCode, tc.want)
		}
	}
}

func TestBindingSwitches(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	ks := idp.KeySet(t, binding.KeySetOptions{})
	lambda, other := ca.Issue(t, "lambda"), ca.Issue(t, "extractor")
	boundToOther := idp.Mint(t, idp.EC, tokens.Claims(other.Cert), nil)
	unbound := idp.Mint(t, idp.EC, tokens.Claims(nil), nil)
	tests := []struct {
		name              string
		enabled, required bool
		token             string
		want              error
	}{
		{"enabled+required: mismatch refused", true, true, boundToOther, binding.ErrThumbprintMismatch},
		{"enabled+required: unbound refused", true, true, unbound, binding.ErrNoConfirmation},
		{"enabled, not required: unbound accepted", true, false, unbound, nil},
		{"enabled, not required: mismatch still refused", true, false, boundToOther, binding.ErrThumbprintMismatch},
		{"disabled: mismatch not checked", false, false, boundToOther, nil},
		{"disabled but required: unbound refused", false, true, unbound, binding.ErrNoConfirmation},
	}
	for _, tc := range tests {
		v := newVerifier(t, ks, func(c *binding.Config) { c.BindingEnabled, c.BindingRequired = tc.enabled, tc.required })
		if _, err := v.Verify(t.Context(), tc.token, lambda.Cert); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestVerifiedTokenCache(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	v := newVerifier(t, idp.KeySet(t, binding.KeySetOptions{}), func(c *binding.Config) { c.Now = clock })
	lambda, other := ca.Issue(t, "lambda"), ca.Issue(t, "extractor")
	token := idp.Mint(t, idp.EC, tokens.Claims(lambda.Cert), nil)

	if _, err := v.Verify(t.Context(), token, lambda.Cert); err != nil {
		t.Fatal(err)
	}
	// A cached token is still checked against each request's certificate.
	if _, err := v.Verify(t.Context(), token, other.Cert); !errors.Is(err, binding.ErrThumbprintMismatch) {
		t.Fatalf("cached token with another cert: %v", err)
	}
	// Without the identity provider the cached token still verifies...
	idp.SetDown(true)
	if _, err := v.Verify(t.Context(), token, lambda.Cert); err != nil {
		t.Fatal(err)
	}
	// ...but only until exp.
	now.Add(int64(6 * time.Minute))
	if _, err := v.Verify(t.Context(), token, lambda.Cert); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("cached token after exp: %v", err)
	}
}

func TestUnknownKIDRefreshPolicy(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	ks := idp.KeySet(t, binding.KeySetOptions{Now: clock})
	v := newVerifier(t, ks, nil)
	lambda := ca.Issue(t, "lambda")
	claims := tokens.Claims(lambda.Cert)
	if idp.Fetches() != 1 {
		t.Fatalf("start-up fetches = %d", idp.Fetches())
	}

	// The identity provider rotates in a new key: the first token signed with
	// it triggers one refresh, which the start-up fetch did not use up.
	k2 := idp.AddKey(t, "ec-2")
	if _, err := v.Verify(t.Context(), idp.Mint(t, k2, claims, nil), lambda.Cert); err != nil {
		t.Fatalf("token with rotated key: %v", err)
	}
	if idp.Fetches() != 2 {
		t.Fatalf("fetches = %d, want 2", idp.Fetches())
	}

	// Another unknown kid within the minute is refused at once, no fetch.
	k3 := idp.AddKey(t, "ec-3")
	start := time.Now()
	if _, err := v.Verify(t.Context(), idp.Mint(t, k3, claims, nil), lambda.Cert); !errors.Is(err, binding.ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
	if idp.Fetches() != 2 || time.Since(start) > 2*time.Second {
		t.Fatalf("rate-limited request fetched (%d) or waited (%s)", idp.Fetches(), time.Since(start))
	}

	// A minute later the refresh is allowed again.
	now.Add(int64(61 * time.Second))
	if _, err := v.Verify(t.Context(), idp.Mint(t, k3, claims, nil), lambda.Cert); err != nil {
		t.Fatal(err)
	}

	// Concurrent requests with an unknown kid share one refresh.
	now.Add(int64(61 * time.Second))
	k4 := idp.AddKey(t, "ec-4")
	token := idp.Mint(t, k4, claims, nil)
	idp.SetDelay(200 * time.Millisecond)
	before := idp.Fetches()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 20 {
		wg.Go(func() {
			if _, err := v.Verify(t.Context(), token, lambda.Cert); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	idp.SetDelay(0)
	if got := idp.Fetches() - before; got != 1 {
		t.Fatalf("%d fetches for 20 concurrent unknown-kid requests, want 1", got)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d concurrent requests failed", failed.Load())
	}
}

func TestJWKSDown(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	lambda := ca.Issue(t, "lambda")
	claims := tokens.Claims(lambda.Cert)

	t.Run("cached keys keep serving and a failed refresh keeps them", func(t *testing.T) {
		ks := idp.KeySet(t, binding.KeySetOptions{})
		v := newVerifier(t, ks, func(c *binding.Config) { c.CacheSize = -1 })
		idp.SetDown(true)
		defer idp.SetDown(false)
		unknown := idp.Mint(t, &tokens.Key{KID: "nope", Alg: "ES256", Signer: idp.EC.Signer}, claims, nil)
		if _, err := v.Verify(t.Context(), unknown, lambda.Cert); !errors.Is(err, binding.ErrUnknownKey) {
			t.Fatalf("err = %v", err)
		}
		if st := ks.Status(); st.Keys != 2 || st.LastError == nil {
			t.Fatalf("status after failed refresh: %+v", st)
		}
		if _, err := v.Verify(t.Context(), idp.Mint(t, idp.RSA, claims, nil), lambda.Cert); err != nil {
			t.Fatalf("cached key refused while JWKS is down: %v", err)
		}
	})

	t.Run("start-up without JWKS, recovery on first token", func(t *testing.T) {
		idp.SetDown(true)
		var ok, failed atomic.Int32
		ks := idp.KeySet(t, binding.KeySetOptions{Logger: quiet, OnRefresh: func(err error) {
			if err != nil {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
		}})
		if st := ks.Status(); st.Keys != 0 || st.LastError == nil {
			t.Fatalf("status: %+v", st)
		}
		if ok.Load() != 0 || failed.Load() != 1 {
			t.Fatalf("OnRefresh saw %d ok, %d failed; want the failed start-up fetch", ok.Load(), failed.Load())
		}
		v := newVerifier(t, ks, nil)
		token := idp.Mint(t, idp.EC, claims, nil)
		if _, err := v.Verify(t.Context(), token, lambda.Cert); err == nil {
			t.Fatal("token accepted without keys")
		}
		idp.SetDown(false)
		// The failed start-up fetch does not count; but the request above
		// used the one refresh of this minute.
		if _, err := v.Verify(t.Context(), token, lambda.Cert); !errors.Is(err, binding.ErrUnknownKey) {
			t.Fatalf("err = %v, want rate-limited refusal", err)
		}
	})
}

func TestKeySetRefusesPlainHTTP(t *testing.T) {
	if _, err := binding.NewKeySet(t.Context(), "http://127.0.0.1:1/certs", binding.KeySetOptions{Client: http.DefaultClient}); err == nil {
		t.Fatal("http JWKS URL accepted")
	}
}

// TestThumbprintMatchesOpenSSL cross-checks Thumbprint against openssl.
func TestThumbprintMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		ci.Required(t, "openssl is not on PATH (apt-get install openssl)")
	}
	leaf := pki.NewCA(t, "CA").Issue(t, "lambda")
	path := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(path, leaf.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "openssl x509 -in "+path+" -outform der | openssl dgst -sha256 -binary").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := base64.RawURLEncoding.EncodeToString(out)
	got := binding.Thumbprint(leaf.Cert)
	if got != want || len(got) != 43 {
		t.Fatalf("Thumbprint = %q, openssl = %q", got, want)
	}
	if c := binding.Confirmation(leaf.Cert); c.X5tS256 != want {
		t.Fatalf("Confirmation = %+v", c)
	}
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer a.b.c", "bearer  x", "Basic x", "", "Bearer"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r, _ := http.NewRequest(http.MethodGet, "https://x/", nil)
		r.Header.Set("Authorization", h)
		tok, err := binding.BearerToken(r)
		if err == nil && (tok == "" || strings.ContainsAny(tok, " \t")) {
			t.Fatalf("accepted %q", tok)
		}
	})
}

// FuzzVerify feeds arbitrary tokens to the verifier: nothing may panic and
// nothing unsigned may pass.
func FuzzVerify(f *testing.F) {
	ca := pki.NewCA(f, "CA")
	idp := tokens.New(f, ca)
	ks := idp.KeySet(f, binding.KeySetOptions{Logger: quiet})
	v, err := binding.NewVerifier(binding.Config{Issuer: tokens.Issuer, Audience: tokens.Audience, Keys: ks, BindingEnabled: true, BindingRequired: true, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	lambda := ca.Issue(f, "lambda")
	good := idp.Mint(f, idp.EC, tokens.Claims(lambda.Cert), nil)
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := v.Verify(t.Context(), token, lambda.Cert); err == nil && token != good {
			t.Fatalf("accepted a token that was not minted: %q", token)
		}
	})
}

// TestAllowedAlgorithmsCannotBeWidened: the list a caller gets is a copy;
// writing HS256 into it does not make an HS256 token verify.
func TestAllowedAlgorithmsCannotBeWidened(t *testing.T) {
	algs := binding.AllowedAlgorithms()
	if !slices.Equal(algs, []string{"RS256", "PS256", "ES256", "EdDSA"}) {
		t.Fatalf("allowed algorithms %v", algs)
	}
	algs[0] = "HS256"
	if binding.AllowedAlgorithms()[0] != "RS256" {
		t.Fatal("the allow-list changed through a returned slice")
	}
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	v := newVerifier(t, idp.KeySet(t, binding.KeySetOptions{}), nil)
	lambda := ca.Issue(t, "lambda")
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, tokens.Claims(lambda.Cert))
	hs.Header["kid"] = idp.RSA.KID
	signed, _ := hs.SignedString([]byte("a shared secret nobody should accept"))
	if _, err := v.Verify(t.Context(), signed, lambda.Cert); !errors.Is(err, binding.ErrInvalidToken) {
		t.Fatalf("HS256 token: err = %v, want ErrInvalidToken", err)
	}
}

// TestWithdrawnSigningKey: the identity provider removes key A and
// publishes key B. After the next background refresh a token signed with A
// is refused (unknown kid) although its verification was cached, and a
// token signed with B is accepted; neither request triggers or waits for a
// refresh (the provider is down by then, so one that needed a fetch would
// fail).
func TestWithdrawnSigningKey(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	ks := idp.KeySet(t, binding.KeySetOptions{RefreshInterval: 50 * time.Millisecond, UnknownKIDInterval: time.Hour, Logger: quiet})
	v := newVerifier(t, ks, nil)
	lambda := ca.Issue(t, "lambda")
	claims := tokens.Claims(lambda.Cert)
	keyA := idp.EC
	tokenA := idp.Mint(t, keyA, claims, nil)
	for range 2 { // verified, then served from the cache
		if _, err := v.Verify(t.Context(), tokenA, lambda.Cert); err != nil {
			t.Fatal(err)
		}
	}

	// Requests keep flowing while the keys change under them.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				_, _ = v.Verify(t.Context(), tokenA, lambda.Cert)
			}
		}
	})

	removed := time.Now()
	idp.RemoveKey(keyA.KID)
	keyB := idp.AddKey(t, "ec-B")
	poll.Until(t, "a background refresh after the change", func() bool {
		st := ks.Status()
		return st.LastSuccess.After(removed) && st.LastError == nil
	})
	idp.SetDown(true)
	close(stop)
	wg.Wait()

	_, err := v.Verify(t.Context(), tokenA, lambda.Cert)
	if !errors.Is(err, binding.ErrUnknownKey) || !strings.Contains(err.Error(), "withdrew") {
		t.Fatalf("token of the withdrawn key: %v, want ErrUnknownKey refused at once", err)
	}
	if got := binding.Reason(err); got != "token signed with an unknown key" {
		t.Errorf("reason %q", got)
	}
	if _, err := v.Verify(t.Context(), idp.Mint(t, keyB, claims, nil), lambda.Cert); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if _, err := v.Verify(t.Context(), idp.Mint(t, idp.RSA, claims, nil), lambda.Cert); err != nil {
		t.Fatalf("token of a key that stayed: %v", err)
	}
}

// TestSigningKeyChanges: what a refresh does to cached verifications, key
// by key.
func TestSigningKeyChanges(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	lambda := ca.Issue(t, "lambda")
	claims := tokens.Claims(lambda.Cert)
	t.Run("a kid republished with another key", func(t *testing.T) {
		idp := tokens.New(t, ca)
		ks := idp.KeySet(t, binding.KeySetOptions{RefreshInterval: 20 * time.Millisecond, UnknownKIDInterval: time.Hour, Logger: quiet})
		v := newVerifier(t, ks, nil)
		token := idp.Mint(t, idp.EC, claims, nil)
		if _, err := v.Verify(t.Context(), token, lambda.Cert); err != nil {
			t.Fatal(err)
		}
		other := idp.AddKey(t, "other")
		idp.RemoveKey(other.KID)
		changed := time.Now()
		idp.PublishKey(&tokens.Key{KID: idp.EC.KID, Alg: "ES256", Signer: other.Signer})
		poll.Until(t, "a refresh", func() bool { return ks.Status().LastSuccess.After(changed) })
		if _, err := v.Verify(t.Context(), token, lambda.Cert); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			t.Fatalf("cached token of the replaced key: %v, want a bad signature", err)
		}
	})
	t.Run("a withdrawn kid published again", func(t *testing.T) {
		idp := tokens.New(t, ca)
		ks := idp.KeySet(t, binding.KeySetOptions{RefreshInterval: 20 * time.Millisecond, UnknownKIDInterval: time.Hour, Logger: quiet})
		v := newVerifier(t, ks, nil)
		token := idp.Mint(t, idp.EC, claims, nil)
		removed := time.Now()
		idp.RemoveKey(idp.EC.KID)
		poll.Until(t, "a refresh", func() bool { return ks.Status().LastSuccess.After(removed) })
		if _, err := v.Verify(t.Context(), token, lambda.Cert); !errors.Is(err, binding.ErrUnknownKey) {
			t.Fatalf("withdrawn: %v", err)
		}
		back := time.Now()
		idp.PublishKey(idp.EC)
		poll.Until(t, "a refresh", func() bool { return ks.Status().LastSuccess.After(back) })
		if _, err := v.Verify(t.Context(), token, lambda.Cert); err != nil {
			t.Fatalf("published again: %v", err)
		}
	})
}

// TestKeyReplacedDuringLookup: a refresh that puts another key under the
// kid between the lookup of a token's key and the read of its state must
// not get the token, verified by the withdrawn key, cached under the new
// key's state (where it would stay accepted).
func TestKeyReplacedDuringLookup(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	lambda := ca.Issue(t, "lambda")
	idp := tokens.New(t, ca)
	ks := idp.KeySet(t, binding.KeySetOptions{RefreshInterval: time.Hour, UnknownKIDInterval: time.Hour, Logger: quiet})
	v := newVerifier(t, ks, nil)
	token := idp.Mint(t, idp.EC, tokens.Claims(lambda.Cert), nil)
	other := idp.AddKey(t, "other")
	idp.RemoveKey(other.KID)
	var once sync.Once
	binding.SetAfterLookup(ks, func() {
		once.Do(func() {
			idp.PublishKey(&tokens.Key{KID: idp.EC.KID, Alg: "ES256", Signer: other.Signer})
			if err := binding.RefreshNow(t.Context(), ks); err != nil {
				t.Error(err)
			}
		})
	})
	// Looked up before the refresh: this one request is verified by the
	// key it was signed with.
	if _, err := v.Verify(t.Context(), token, lambda.Cert); err != nil {
		t.Fatal(err)
	}
	binding.SetAfterLookup(ks, nil)
	if _, err := v.Verify(t.Context(), token, lambda.Cert); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Fatalf("the token of the replaced key, next request: %v, want a bad signature", err)
	}
}
