package tokensource

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/envconfig"
)

// Provider says where the identity provider is and how it is verified, as
// the OIDC_* variables set it for the agents and the Lambda alike.
type Provider struct {
	// Issuer is OIDC_ISSUER, the exact iss of every token.
	Issuer string
	// ServerName is OIDC_SERVER_NAME (default: the issuer's host), the name
	// the provider's certificate must carry whatever host a URL dials.
	ServerName string
	// TokenURL is OIDC_TOKEN_URL (default: the issuer's token endpoint).
	TokenURL string
	// ClientID is OIDC_CLIENT_ID (default: the caller's own name).
	ClientID string
}

// ProviderFromEnv reads the OIDC_* variables every caller shares; clientID
// is the default client id. An issuer or token URL that is not https is
// recorded in env: the provider is verified against the CA, and a token
// must never travel in clear.
func ProviderFromEnv(env *envconfig.Reader, clientID string) Provider {
	p := Provider{
		Issuer:   env.String("OIDC_ISSUER", agentapi.DefaultIssuer),
		ClientID: env.String("OIDC_CLIENT_ID", clientID),
	}
	p.TokenURL = env.String("OIDC_TOKEN_URL", agentapi.TokenEndpoint(p.IssuerBase()))
	if u := env.HTTPSURL("OIDC_ISSUER", p.Issuer); u != nil {
		p.ServerName = env.String("OIDC_SERVER_NAME", u.Hostname())
	}
	env.HTTPSURL("OIDC_TOKEN_URL", p.TokenURL, "the identity provider is verified against the CA")
	return p
}

// IssuerBase is the issuer without a trailing slash, the base of the
// provider's endpoint URLs.
func (p Provider) IssuerBase() string { return strings.TrimRight(p.Issuer, "/") }

// ProviderClientOptions tune ProviderClient.
type ProviderClientOptions struct {
	// Timeout bounds each request, the answer's body included.
	Timeout time.Duration
	// SkipVerify turns off the check of the provider's certificate
	// (MTLS_VERIFY_SERVER=false). Never outside a lab.
	SkipVerify bool
	// Dial, when set, makes the connections (a caller that connects to
	// another address than the URL's host, as local runs do); the
	// provider is still verified by serverName.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// CRL, when set, refuses a provider certificate the CA revoked.
	CRL certload.CRLSource
}

// ProviderClient returns the HTTP client that reaches the identity
// provider, for tokens and for its JWKS: it presents cert, verifies the
// provider against the CA and the system roots by serverName
// (OIDC_SERVER_NAME) whatever host the URL dials, and follows no redirect,
// which would take the request, and the client certificate, to another
// host or to plain http.
func ProviderClient(cert certload.Source, serverName string, opts ProviderClientOptions) *http.Client {
	return &http.Client{
		Timeout:       opts.Timeout,
		CheckRedirect: certload.RefuseRedirect,
		Transport: &http.Transport{
			TLSClientConfig: certload.ClientConfig(cert, certload.AuthorizeDNSName(serverName), certload.ClientOptions{
				ServerName: serverName, SystemRoots: true, SkipVerify: opts.SkipVerify, CRL: opts.CRL,
			}),
			DialContext:         opts.Dial,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}
