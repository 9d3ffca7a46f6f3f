package binding_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/binding"
)

// distinct mints n tokens bound to cert that differ only by jti.
func distinct(t testing.TB, idp *tokens.IdP, cert *x509.Certificate, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		c := tokens.Claims(cert)
		c["jti"] = fmt.Sprintf("t-%04d", i) // one length for all
		out[i] = idp.Mint(t, idp.EC, c, nil)
	}
	return out
}

// TestCacheBound: the cache never holds more than CacheSize entries nor
// more than CacheBytes accounted bytes, whatever arrives; every token is
// still accepted (an evicted one is verified again).
func TestCacheBound(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	ks := idp.KeySet(t, binding.KeySetOptions{})
	lambda := ca.Issue(t, "lambda")
	toks := distinct(t, idp, lambda.Cert, 12)
	cost := binding.EntryCost(len(toks[0]))
	for _, tok := range toks {
		if len(tok) != len(toks[0]) {
			t.Fatal("tokens of different lengths")
		}
	}
	tests := []struct {
		name        string
		size, bytes int
		wantEntries int
	}{
		{"by entries", 4, 0, 4},
		{"by bytes", 100, 3*cost + cost/2, 3},
		{"a token larger than the budget is not cached", 100, cost - 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, ks, func(c *binding.Config) { c.CacheSize, c.CacheBytes = tc.size, tc.bytes })
			for round := range 2 {
				for i, tok := range toks {
					if _, err := v.Verify(t.Context(), tok, lambda.Cert); err != nil {
						t.Fatalf("round %d token %d: %v", round, i, err)
					}
					entries, bytes := v.CacheStats()
					if entries > tc.wantEntries || (tc.bytes > 0 && bytes > tc.bytes) {
						t.Fatalf("cache holds %d entries, %d bytes (bound %d entries, %d bytes)", entries, bytes, tc.size, tc.bytes)
					}
					// Tokens of one length: the accounting is exact.
					if bytes != entries*cost {
						t.Fatalf("%d entries accounted as %d bytes", entries, bytes)
					}
				}
			}
			if entries, _ := v.CacheStats(); entries != tc.wantEntries {
				t.Fatalf("cache holds %d entries, want %d", entries, tc.wantEntries)
			}
		})
	}
}

// TestCacheConcurrentUse: requests with a handful of tokens, from two
// certificates, through a cache smaller than the set, at once (run with
// -race): each gets the answer its own certificate deserves.
func TestCacheConcurrentUse(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	v := newVerifier(t, idp.KeySet(t, binding.KeySetOptions{}), func(c *binding.Config) { c.CacheSize = 3 })
	lambda, other := ca.Issue(t, "lambda"), ca.Issue(t, "extractor")
	toks := distinct(t, idp, lambda.Cert, 6)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				tok := toks[(w+i)%len(toks)]
				cert, want := lambda.Cert, error(nil)
				if i%5 == 0 {
					cert, want = other.Cert, binding.ErrThumbprintMismatch
				}
				if _, err := v.Verify(context.Background(), tok, cert); !errors.Is(err, want) {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent verification: %v", err)
	}
	if entries, _ := v.CacheStats(); entries > 3 {
		t.Fatalf("cache holds %d entries, bound 3", entries)
	}
}

// TestConnContext: the thumbprint and identity kept for a connection
// answer only for the certificate they were computed from. A token
// bound to one certificate is refused with another on the same
// connection memo, and accepted again with its own; a distinct copy of
// the same certificate is checked afresh and accepted.
func TestConnContext(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	idp := tokens.New(t, ca)
	v := newVerifier(t, idp.KeySet(t, binding.KeySetOptions{}), nil)
	lambda, other := ca.Issue(t, "lambda"), ca.Issue(t, "extractor")
	copyOfLambda, err := x509.ParseCertificate(lambda.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	token := idp.Mint(t, idp.EC, tokens.Claims(lambda.Cert), nil)
	var got []string
	h := v.Guard(func(w http.ResponseWriter, _ *http.Request, a binding.Auth) {
		got = append(got, a.Caller)
	}, func(w http.ResponseWriter, _ *http.Request, err error) {
		got = append(got, binding.Code(err))
	})
	conn := binding.ConnContext(context.Background(), nil)
	for _, cert := range []*x509.Certificate{lambda.Cert, lambda.Cert, other.Cert, lambda.Cert, copyOfLambda, other.Cert} {
		r := httptest.NewRequestWithContext(conn, http.MethodPost, "/message", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	want := []string{"lambda", "lambda", "binding_mismatch", "lambda", "lambda", "binding_mismatch"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("answers %v, want %v", got, want)
	}
}

// FuzzParseMatchesJWTParser holds the token check to what it was with
// jwt's Parser: for every token, the same verdict, the same reason code
// and message, and the same claims.
func FuzzParseMatchesJWTParser(f *testing.F) {
	ca := pki.NewCA(f, "CA")
	idp := tokens.New(f, ca)
	v, err := binding.NewVerifier(binding.Config{Issuer: tokens.Issuer, Audience: tokens.Audience,
		Keys: idp.KeySet(f, binding.KeySetOptions{Logger: quiet}), BindingEnabled: true, BindingRequired: true, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	lambda := ca.Issue(f, "lambda")
	bound := tokens.Claims(lambda.Cert)
	now := time.Now()
	good := idp.Mint(f, idp.EC, bound, nil)
	parts := strings.Split(good, ".")
	seeds := []string{
		good,
		idp.Mint(f, idp.RSA, bound, nil),
		idp.Mint(f, idp.EC, with(bound, "nbf", now.Add(2*time.Minute).Unix()), nil),
		idp.Mint(f, idp.EC, with(bound, "exp", nil), nil),
		idp.Mint(f, idp.EC, with(bound, "exp", now.Add(-time.Minute).Unix()), nil),
		idp.Mint(f, idp.EC, with(bound, "iss", "https://evil.example"), nil),
		idp.Mint(f, idp.EC, with(bound, "aud", "account"), nil),
		idp.Mint(f, idp.EC, with(bound, "cnf", "x"), nil),
		idp.Mint(f, idp.EC, with(bound, "exp", "1"), nil),
		idp.Mint(f, idp.EC, with(bound, "aud", []any{1}), nil),
		idp.Mint(f, idp.EC, bound, map[string]any{"kid": nil}),
		idp.Mint(f, idp.EC, bound, map[string]any{"kid": 3}),
		idp.Mint(f, idp.EC, bound, map[string]any{"jku": "https://evil", "crit": []string{"x"}}),
		idp.Mint(f, idp.EC, bound, map[string]any{"crit": []string{"x"}}),
		idp.Mint(f, idp.EC, bound, map[string]any{"x5c": nil}),
		idp.Mint(f, &tokens.Key{KID: idp.RSA.KID, Alg: "ES256", Signer: idp.EC.Signer}, bound, nil),
		idp.Mint(f, &tokens.Key{KID: idp.RSA.KID, Alg: "PS256", Signer: idp.RSA.Signer}, bound, nil),
		unsigned(map[string]any{"alg": "XYZ", "kid": idp.EC.KID}, bound),
		unsigned(map[string]any{"alg": "HS256", "kid": idp.EC.KID}, bound),
		unsigned(map[string]any{"alg": "none", "kid": idp.EC.KID}, bound),
		unsigned(map[string]any{"kid": idp.EC.KID}, bound),
		unsigned(map[string]any{"alg": 5, "kid": idp.EC.KID}, bound),
		parts[0] + "." + parts[1],
		parts[0] + "." + parts[1] + "." + parts[2] + ".x",
		parts[0] + "." + parts[1] + ".!!",
		parts[0] + ".!!." + parts[2],
		base64.RawURLEncoding.EncodeToString([]byte(`null`)) + "." + parts[1] + "." + parts[2],
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"ec-1"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"exp":1,"exp":2}`)) + "." + parts[2],
		"",
		"not.a.jwt",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		want, wantErr := v.ParseWithJWTParser(t.Context(), raw)
		got, gotErr := v.Parse(t.Context(), raw)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("token %q: error %v, jwt's Parser %v", raw, gotErr, wantErr)
		}
		if gotErr != nil {
			if binding.Code(gotErr) != binding.Code(wantErr) || binding.Reason(gotErr) != binding.Reason(wantErr) {
				t.Fatalf("token %q: refused as %s (%v), jwt's Parser %s (%v)", raw, binding.Code(gotErr), gotErr, binding.Code(wantErr), wantErr)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Fatalf("token %q: claims %s, jwt's Parser %s", raw, gj, wj)
		}
	})
}
