// Package tokensource gets certificate-bound access tokens: the OAuth 2.0
// client credentials grant with tls_client_auth (RFC 8705 section 2.1), the
// client certificate on the TLS connection and no secret.
//
// A Source is an oauth2.TokenSource. Tokens are cached by
// oauth2.ReuseTokenSourceWithExpiry until shortly before they expire; every
// newly fetched token is checked to be bound to this client's certificate,
// and the cache is dropped when the certificate rotates or on Invalidate.
package tokensource

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// ErrNotBound: the identity provider issued a token without cnf, or bound
// to another certificate than the one this client presented.
var ErrNotBound = errors.New("tokensource: identity provider did not bind the token to this certificate")

// Error is a failure of the token endpoint.
type Error struct {
	// Code is the RFC 6749 error code ("invalid_client", ...) when the
	// endpoint sent one, else empty.
	Code string
	// Description is the endpoint's error_description, if any.
	Description string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Transient is true for failures worth retrying (network, 5xx, 429).
	Transient bool
	// Err is the underlying error.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Code != "":
		msg := "tokensource: token endpoint refused: " + e.Code
		if e.Description != "" {
			msg += " (" + e.Description + ")"
		}
		return msg
	case e.Status != 0:
		return fmt.Sprintf("tokensource: token endpoint answered HTTP %d", e.Status)
	default:
		return "tokensource: token endpoint unreachable: " + e.Err.Error()
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Config configures a Source.
type Config struct {
	// TokenURL is the token endpoint (OIDC_TOKEN_URL); it must be https.
	TokenURL string
	// ClientID is this client's id (OIDC_CLIENT_ID).
	ClientID string
	// Certificate is this client's identity; its certificate is presented
	// to the token endpoint and the token must be bound to it.
	Certificate certload.Source
	// ServerName is the name the token endpoint's certificate must carry
	// (OIDC_SERVER_NAME), whatever host the URL dials.
	ServerName string
	// CRL, when set, refuses a token endpoint whose certificate the CA
	// revoked.
	CRL certload.CRLSource
	// HTTPClient overrides the mTLS client built from Certificate and
	// ServerName (tests that count requests).
	HTTPClient *http.Client
	// ExpiryMargin: a cached token is replaced this long before it expires
	// (default 30s).
	ExpiryMargin time.Duration
	// Attempts bounds tries for transient failures (default 3).
	Attempts int
	// Logger receives retries; nil means slog.Default().
	Logger *slog.Logger
}

// Source is a cached, certificate-bound oauth2.TokenSource.
type Source struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	reuse    oauth2.TokenSource
	rotation certload.Rotation     // of the certificate reuse was built for
	revs     *certload.Revocations // the CRL the client's connections were checked against
	fetchs   int
}

// New returns a Source for cfg.
func New(cfg Config) (*Source, error) {
	if !strings.HasPrefix(cfg.TokenURL, "https://") {
		return nil, fmt.Errorf("tokensource: token URL must be https: %q", cfg.TokenURL)
	}
	if cfg.ClientID == "" || cfg.Certificate == nil {
		return nil, errors.New("tokensource: client id and certificate are required")
	}
	if cfg.ExpiryMargin <= 0 {
		cfg.ExpiryMargin = 30 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	s := &Source{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.client == nil && cfg.ServerName == "" {
		return nil, errors.New("tokensource: the token endpoint's server name is required")
	}
	return s, nil
}

// clientFor returns the HTTP client that fetches tokens for bundle b: one
// that presents b's certificate and nothing else, so that the token it
// gets is bound to the certificate checkBound expects even when the
// source rotates during the request.
func (s *Source) clientFor(b *certload.Bundle) *http.Client {
	if s.cfg.HTTPClient != nil {
		return s.cfg.HTTPClient
	}
	return ProviderClient(certload.NewStatic(b), s.cfg.ServerName, ProviderClientOptions{Timeout: 15 * time.Second, CRL: s.cfg.CRL})
}

// Token returns a valid token bound to the current certificate, from the
// cache when it holds one.
func (s *Source) Token() (*oauth2.Token, error) {
	return s.current().Token()
}

// Invalidate drops the cached token: the next Token fetches a new one (after
// an agent answered 401, say).
func (s *Source) Invalidate() {
	s.mu.Lock()
	s.reuse = nil
	s.mu.Unlock()
}

func (s *Source) current() oauth2.TokenSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, rotated := s.rotation.Check(s.cfg.Certificate)
	if s.cfg.CRL != nil {
		// The provider's certificate is checked against the CRL at the
		// handshake only: a new list closes the kept-alive connections,
		// so that the next fetch shakes hands under it.
		if r := s.cfg.CRL.Revocations(); r != s.revs {
			s.revs = r
			if s.client != nil {
				s.client.CloseIdleConnections()
			}
		}
	}
	if rotated || s.client == nil {
		// A rotated certificate (or CA bundle) invalidates the cached
		// token: it is bound to the old one. Kept-alive connections still
		// present the old certificate, so the next token comes over a new
		// connection of a client pinned to the new one.
		if s.client != nil {
			s.client.CloseIdleConnections()
		}
		s.client = s.clientFor(b)
		s.reuse = nil
	}
	if s.reuse == nil {
		s.reuse = oauth2.ReuseTokenSourceWithExpiry(nil, &boundSource{s: s, client: s.client, thumb: binding.Thumbprint(b.Leaf())}, s.cfg.ExpiryMargin)
	}
	return s.reuse
}

// boundSource fetches one token and checks its binding.
type boundSource struct {
	s      *Source
	client *http.Client // presents the certificate of thumb
	thumb  string
}

func (b *boundSource) Token() (*oauth2.Token, error) {
	s := b.s
	cc := clientcredentials.Config{
		ClientID:  s.cfg.ClientID,
		TokenURL:  s.cfg.TokenURL,
		AuthStyle: oauth2.AuthStyleInParams, // client_id in the body, no secret
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, b.client)
	var lastErr error
	backoff := 200 * time.Millisecond
	for attempt := 1; attempt <= s.cfg.Attempts; attempt++ {
		tok, err := cc.Token(ctx)
		if err == nil {
			s.mu.Lock()
			s.fetchs++
			s.mu.Unlock()
			if err := checkBound(tok.AccessToken, b.thumb); err != nil {
				return nil, err
			}
			return tok, nil
		}
		lastErr = classify(err)
		var te *Error
		if !errors.As(lastErr, &te) || !te.Transient || attempt == s.cfg.Attempts {
			break
		}
		s.log.Warn("token request failed; retrying", "attempt", attempt, "error", lastErr)
		time.Sleep(backoff)
		backoff *= 2
	}
	return nil, lastErr
}

// Fetches returns how many tokens were fetched (for tests and benchmarks).
func (s *Source) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetchs
}

// checkBound parses (without verifying: that is the receiving agent's job)
// the token's cnf claim and compares it with thumb.
func checkBound(token, thumb string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%w: access token is not a JWT", ErrNotBound)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("%w: access token payload is not base64url", ErrNotBound)
	}
	var claims struct {
		Cnf *binding.Cnf `json:"cnf"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return fmt.Errorf("%w: access token payload is not JSON", ErrNotBound)
	}
	if claims.Cnf == nil || claims.Cnf.X5tS256 != thumb {
		return ErrNotBound
	}
	return nil
}

func classify(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return &Error{Code: re.ErrorCode, Description: re.ErrorDescription, Status: status,
			Transient: status >= 500 || status == http.StatusTooManyRequests, Err: err}
	}
	var netErr net.Error
	var opErr *net.OpError
	transient := errors.As(err, &netErr) && netErr.Timeout() || errors.As(err, &opErr) && opErr.Op == "dial"
	return &Error{Transient: transient, Err: err}
}
