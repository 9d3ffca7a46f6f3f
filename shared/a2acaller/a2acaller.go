// Package a2acaller configures a2a-go's client (a2aclient) to call a ca-a2a
// agent over the A2A protocol (docs/contract.md, A2A). It resolves the
// agent's card over mTLS, presents the caller's certificate on every
// connection, verifies the agent by its name whatever address is dialed,
// and attaches a certificate-bound token to every call; the protocol, its
// types and its JSON-RPC transport are a2a-go's.
//
// What to send is in a2askill: a2askill.Message builds the message that
// calls a skill, a2askill.Result reads the Task that answers it.
package a2acaller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"
	"golang.org/x/oauth2"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

// TokenSource gives the bearer token; *tokensource.Source satisfies it.
type TokenSource interface {
	Token() (*oauth2.Token, error)
}

// Config says who calls and how to reach the agent.
type Config struct {
	// Certificate is the caller's identity, presented on every connection.
	Certificate certload.Source
	// Tokens gives the bearer token. When nil, tokens come from the token
	// URL of the card's oauth2 scheme (client credentials with
	// tls_client_auth, over Certificate), as ClientID.
	Tokens TokenSource
	// ClientID defaults to the identity of Certificate.
	ClientID string
	// Connect, when set, is the host connected to instead of each URL's
	// host, the port staying the URL's (local runs: 127.0.0.1). Servers
	// are still verified by the names in the URLs.
	Connect string
	// Timeout bounds each request to the agent (default 2 minutes: the
	// agents bound a call to 100 s).
	Timeout time.Duration
}

// Agent is an agent whose card was resolved, and an a2a-go client for it.
type Agent struct {
	// Name is the agent's identity, from the host of its URL.
	Name string
	// Card is the card the agent published.
	Card *a2a.AgentCard
	// Client is a2a-go's client, made from the card.
	Client *a2aclient.Client

	idle []*http.Client
}

// Close releases the idle connections to the agent and to the identity
// provider.
func (a *Agent) Close() {
	for _, c := range a.idle {
		c.CloseIdleConnections()
	}
}

// Errors of Dial.
var (
	// ErrNotAgentURL: the URL is not https://<agent>.ca-a2a.local[:port].
	ErrNotAgentURL = errors.New("a2acaller: not an agent URL (https://<agent>.ca-a2a.local:<port>)")
	// ErrCardURL: the card's url is not on the host its card came from.
	ErrCardURL = errors.New("a2acaller: the agent card's url is not the agent's")
	// ErrNoTokenURL: the card names no oauth2 client-credentials token URL.
	ErrNoTokenURL = errors.New("a2acaller: the agent card names no https oauth2 client-credentials token URL")
)

// maxResponseBytes bounds an answer, a card or a Task.
const maxResponseBytes = agentapi.MaxResponseBytes

// Dial resolves the card of the agent at baseURL
// (https://<agent>.ca-a2a.local:<port>) and returns a client made from it.
// The card must name the same host and port as its JSON-RPC url: the
// connections are pinned to that agent.
func Dial(ctx context.Context, cfg Config, baseURL string) (*Agent, error) {
	if cfg.Certificate == nil {
		return nil, errors.New("a2acaller: a certificate is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	base, name, err := agentURL(baseURL)
	if err != nil {
		return nil, err
	}
	httpClient := agentClient(cfg.Certificate, name, cfg.Connect, cfg.Timeout)
	card, err := agentcard.NewResolver(httpClient).Resolve(ctx, base.String())
	if err != nil {
		return nil, fmt.Errorf("a2acaller: agent card of %s: %w", name, err)
	}
	if u, err := url.Parse(card.URL); err != nil || u.Scheme != "https" || !strings.EqualFold(u.Host, base.Host) {
		return nil, fmt.Errorf("%w: %q", ErrCardURL, card.URL)
	}
	idle := []*http.Client{httpClient}
	tokens := cfg.Tokens
	if tokens == nil {
		var idp *http.Client
		if tokens, idp, err = cardTokens(card, cfg); err != nil {
			httpClient.CloseIdleConnections()
			return nil, err
		}
		idle = append(idle, idp)
	}
	client, err := a2aclient.NewFromCard(ctx, card,
		a2aclient.WithJSONRPCTransport(httpClient),
		a2aclient.WithInterceptors(&bearer{tokens: tokens}))
	if err != nil {
		return nil, fmt.Errorf("a2acaller: %w", err)
	}
	return &Agent{Name: name, Card: card, Client: client, idle: idle}, nil
}

// agentURL checks that raw is an agent's https URL and returns it with the
// agent's name.
func agentURL(raw string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil {
		return nil, "", fmt.Errorf("%w: %q", ErrNotAgentURL, raw)
	}
	name, ok := strings.CutSuffix(strings.ToLower(u.Hostname()), "."+agentapi.Domain)
	if !ok || !agentapi.IsAgent(name) {
		return nil, "", fmt.Errorf("%w: %q", ErrNotAgentURL, raw)
	}
	return &url.URL{Scheme: "https", Host: u.Host}, name, nil
}

// agentClient is the HTTP client of every request to agent: the caller's
// certificate, the agent verified by its identity, no redirects, bounded
// answers.
func agentClient(src certload.Source, agent, connect string, timeout time.Duration) *http.Client {
	tlsCfg := certload.ClientConfig(src, agentapi.AuthorizeAgent(agent), certload.ClientOptions{ServerName: agentapi.DNSName(agent)})
	return &http.Client{
		Timeout: timeout,
		// A redirect would take the request, and its token, elsewhere.
		CheckRedirect: certload.RefuseRedirect,
		Transport: limitBody{&http.Transport{
			TLSClientConfig:     tlsCfg,
			DialContext:         dialer(connect),
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
		}},
	}
}

// cardTokens builds the token source the card asks for: client
// credentials at its oauth2 scheme's token URL, the identity provider
// verified by that URL's host.
func cardTokens(card *a2a.AgentCard, cfg Config) (TokenSource, *http.Client, error) {
	var tokenURL string
	for _, s := range card.SecuritySchemes {
		if o, ok := s.(a2a.OAuth2SecurityScheme); ok && o.Flows.ClientCredentials != nil {
			tokenURL = o.Flows.ClientCredentials.TokenURL
		}
	}
	u, err := url.Parse(tokenURL)
	if tokenURL == "" || err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, nil, ErrNoTokenURL
	}
	clientID := cfg.ClientID
	if clientID == "" {
		if clientID, err = agentapi.Identity(cfg.Certificate.Bundle().Leaf()); err != nil {
			return nil, nil, fmt.Errorf("a2acaller: client id: %w", err)
		}
	}
	idp := tokensource.ProviderClient(cfg.Certificate, u.Hostname(),
		tokensource.ProviderClientOptions{Timeout: 15 * time.Second, Dial: dialer(cfg.Connect)})
	ts, err := tokensource.New(tokensource.Config{
		TokenURL: tokenURL, ClientID: clientID, Certificate: cfg.Certificate, ServerName: u.Hostname(), HTTPClient: idp,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("a2acaller: %w", err)
	}
	return ts, idp, nil
}

// dialer connects to connect instead of the address's host, when set.
func dialer(connect string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if connect == "" {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, net.JoinHostPort(connect, port))
	}
}

// bearer attaches the token to every call whose card requires an oauth2
// scheme. It stands in for a2aclient.AuthInterceptor, which needs a session
// in every call's context and sends the call without a token when the
// token cannot be had; here that failure fails the call, with its cause.
type bearer struct {
	a2aclient.PassthroughInterceptor
	tokens TokenSource
}

func (b *bearer) Before(ctx context.Context, req *a2aclient.Request) (context.Context, error) {
	if !requiresOAuth2(req.Card) {
		return ctx, nil
	}
	tok, err := b.tokens.Token()
	if err != nil {
		return ctx, fmt.Errorf("a2acaller: token: %w", err)
	}
	req.Meta["Authorization"] = []string{"Bearer " + tok.AccessToken}
	return ctx, nil
}

func requiresOAuth2(card *a2a.AgentCard) bool {
	if card == nil {
		return false
	}
	for _, req := range card.Security {
		for name := range req {
			if _, ok := card.SecuritySchemes[name].(a2a.OAuth2SecurityScheme); ok {
				return true
			}
		}
	}
	return false
}

// limitBody bounds every answer's body: a2a-go reads bodies to their end.
type limitBody struct{ rt http.RoundTripper }

func (l limitBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxResponseBytes}
	return resp, nil
}

// errTooLarge: an answer over maxResponseBytes.
var errTooLarge = errors.New("a2acaller: answer larger than 64 MiB")

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the bound: only the end of the body may follow.
		var one [1]byte
		if n, err := b.ReadCloser.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
