package bench

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/policy"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/server"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// discardLog formats every record as the agents do (JSON) but writes it
// nowhere: the cost of logging stays in the measurement, the disk does not.
func discardLog() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// Fixture is one in-process PKI and identity provider: a CA, a JWKS and
// token endpoint on 127.0.0.1 (internal/testutil/tokens), and the Lambda's
// client certificate with a token bound to it.
type Fixture struct {
	CA  *pki.CA
	IdP *tokens.IdP
	// Client is the caller's certificate (agent name "lambda").
	Client    *pki.Leaf
	ClientSrc certload.Source
	// Token is an ES256 token bound to Client, valid for 5 minutes.
	Token string
}

// NewFixture builds a Fixture; everything stops when tb ends.
func NewFixture(tb testing.TB) *Fixture {
	tb.Helper()
	ca := pki.NewCA(tb, "CA A2A Root CA")
	f := &Fixture{CA: ca, IdP: tokens.New(tb, ca), Client: ca.Issue(tb, "lambda")}
	src, err := certload.FromPEM(f.Client.CertPEM, f.Client.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
	if err != nil {
		tb.Fatal(err)
	}
	f.ClientSrc = src
	f.Token = f.IdP.Mint(tb, f.IdP.EC, tokens.Claims(f.Client.Cert), nil)
	return f
}

// Tokens returns a token source that always answers f.Token.
func (f *Fixture) Tokens() *StaticTokens {
	return &StaticTokens{tok: &oauth2.Token{AccessToken: f.Token, TokenType: "Bearer", Expiry: time.Now().Add(4 * time.Minute)}}
}

// StaticTokens is an agentclient.TokenSource with one fixed token: the handshake
// measurements must not include token requests.
type StaticTokens struct{ tok *oauth2.Token }

// Token returns the fixed token.
func (s *StaticTokens) Token() (*oauth2.Token, error) { return s.tok, nil }

// Invalidate does nothing: the token is valid for the whole run.
func (s *StaticTokens) Invalidate() {}

// Verifier returns the verifier an agent builds (the defaults: binding
// enabled and required) on a KeySet of f's JWKS.
func (f *Fixture) Verifier(tb testing.TB, cacheSize int) *binding.Verifier {
	tb.Helper()
	v, err := binding.NewVerifier(binding.Config{
		Issuer: tokens.Issuer, Audience: tokens.Audience, Keys: f.IdP.KeySet(tb, binding.KeySetOptions{}),
		BindingEnabled: true, BindingRequired: true, CacheSize: cacheSize, Logger: discardLog(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// Agent is a real agent server (agentsvc/runtime/server: the whole auth
// chain, the default policy, the timeouts and limits of docs/contract.md) on
// 127.0.0.1 with a certificate for Name.
type Agent struct {
	Name string
	URL  string
	// Handshakes and Resumed count the server's TLS handshakes, all and
	// resumed ones (tls.ConnectionState.DidResume).
	Handshakes, Resumed atomic.Int64
}

// StartAgent serves agent name with methods (besides the built-in
// get_health and list_skills) until tb ends, without metrics.
func (f *Fixture) StartAgent(tb testing.TB, name string, methods ...skill.Method) *Agent {
	tb.Helper()
	return f.startAgent(tb, name, false, methods...)
}

// StartAgentWithMetrics is StartAgent with the agent's metrics as an agent
// has them (Prometheus counters and the EMF latency samples, written to
// io.Discard).
func (f *Fixture) StartAgentWithMetrics(tb testing.TB, name string, methods ...skill.Method) *Agent {
	tb.Helper()
	return f.startAgent(tb, name, true, methods...)
}

func (f *Fixture) startAgent(tb testing.TB, name string, withMetrics bool, methods ...skill.Method) *Agent {
	tb.Helper()
	srv, src := f.agentServerAndSource(tb, name, withMetrics, methods...)
	a := &Agent{Name: name}
	tlsCfg := certload.ServerConfig(src, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true})
	inner := tlsCfg.VerifyConnection
	tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error {
		a.Handshakes.Add(1)
		if cs.DidResume {
			a.Resumed.Add(1)
		}
		return inner(cs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := srv.HTTPServer(ln.Addr().String(), tlsCfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			tb.Logf("agent %s: %v", name, err)
		}
	}()
	tb.Cleanup(func() { _ = hs.Close(); <-done })
	a.URL = "https://" + ln.Addr().String()
	return a
}

// agentServer builds the agent server of name as StartAgent serves it.
func (f *Fixture) agentServer(tb testing.TB, name string, withMetrics bool, methods ...skill.Method) *server.Server {
	tb.Helper()
	srv, _ := f.agentServerAndSource(tb, name, withMetrics, methods...)
	return srv
}

func (f *Fixture) agentServerAndSource(tb testing.TB, name string, withMetrics bool, methods ...skill.Method) (*server.Server, certload.Source) {
	tb.Helper()
	leaf := f.CA.Issue(tb, name)
	src, err := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, f.CA.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageServerAndClient})
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := policy.Default(name)
	if err != nil {
		tb.Fatal(err)
	}
	var m *metrics.Agent
	if withMetrics {
		m = metrics.New(metrics.Options{Agent: name, Certificate: src, EMF: io.Discard, Logger: discardLog()})
	}
	srv, err := server.New(server.Options{
		Agent:    server.Agent{Name: name, Description: "bench " + name, Methods: methods},
		Policy:   pol,
		Verifier: f.Verifier(tb, 0),
		Logger:   discardLog(),
		Metrics:  m,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srv, src
}

// HTTPClient returns a keep-alive HTTP/1.1 client that presents f.Client
// and verifies the server as peer (SAN peer.ca-a2a.local), with room for
// conns idle connections.
func (f *Fixture) HTTPClient(tb testing.TB, peer string, conns int) *http.Client {
	tb.Helper()
	tr := &http.Transport{
		TLSClientConfig: certload.ClientConfig(f.ClientSrc, agentapi.AuthorizeAgent(peer),
			certload.ClientOptions{ServerName: agentapi.DNSName(peer)}),
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// uniqueTokens mints n distinct tokens (jti) bound to f.Client, signed with
// key.
func (f *Fixture) uniqueTokens(tb testing.TB, key *tokens.Key, n int) []string {
	out := make([]string, n)
	for i := range out {
		c := tokens.Claims(f.Client.Cert)
		c["jti"] = "bench-" + strconv.Itoa(i)
		out[i] = f.IdP.Mint(tb, key, c, nil)
	}
	return out
}

// parseUnverified splits a token into signing input and decoded signature.
func parseUnverified(raw string) (signingInput string, sig []byte, err error) {
	p := jwt.NewParser()
	_, parts, err := p.ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		return "", nil, err
	}
	sig, err = p.DecodeSegment(parts[2])
	return parts[0] + "." + parts[1], sig, err
}
