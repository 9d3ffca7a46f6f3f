// Package agentclient is the JSON-RPC client every caller (the Lambda, the
// orchestrator) uses to call an agent: HTTPS with the caller's certificate,
// the peer verified by its identity <agent>.ca-a2a.local whatever address is
// dialed, and a certificate-bound bearer token on every call.
//
// (The name a2a is kept for the A2A protocol the agents also speak.)
package agentclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// TokenSource gives the bearer token; Invalidate drops a cached token that
// an agent refused. *tokensource.Source satisfies it.
type TokenSource interface {
	Token() (*oauth2.Token, error)
	Invalidate()
}

// maxResponseBytes bounds an agent's answer (extracted documents included).
const maxResponseBytes = agentapi.MaxResponseBytes

// Config configures a Client.
type Config struct {
	// Certificate is the caller's identity, presented on every connection.
	Certificate certload.Source
	// Tokens gives the bound bearer token.
	Tokens TokenSource
	// Peers maps agent names to base URLs (https://orchestrator.ca-a2a.local:8001).
	Peers map[string]string
	// SkipVerify turns off server verification (MTLS_VERIFY_SERVER=false).
	SkipVerify bool
	// CRL, when set, refuses a peer whose certificate the CA revoked, at
	// the handshake; when it changes, kept-alive connections are dropped,
	// so the next call to each peer is a new handshake.
	CRL certload.CRLSource
	// HandshakeCounter, when set, counts TLS handshakes, full or resumed
	// (tests, benchmarks).
	HandshakeCounter *atomic.Int64
	// Observer, when set, learns how each call ended (metrics).
	Observer Observer
}

// Observer learns the outcome of every Call: the agent and method called,
// the JSON-RPC code (0 for success; the code of the *CallError otherwise)
// after the client's retries, and the time it took. It is called on the
// caller's goroutine, so it must be quick and safe for concurrent use.
type Observer interface {
	CallDone(agent, method string, code int, elapsed time.Duration)
}

// Client calls agents. It is safe for concurrent use; create one per process
// and reuse it: it keeps connections alive and resumes TLS sessions.
type Client struct {
	cfg    Config
	urls   map[string]string
	nextID atomic.Int64

	mu  sync.Mutex // serialises the switch to a new generation
	gen atomic.Pointer[generation]
}

// generation is everything the client's connections depend on: the
// caller's certificate and CA bundle (one certload.Bundle) and the CRL in
// force. Its transports present exactly that certificate and verify peers
// against exactly those CAs and that CRL, and its TLS sessions are its own:
// a resumed session carries the certificates of the handshake that made it,
// so a session made with another certificate, or before the CAs or the CRL
// changed, must never be resumed. When any of them changes, the next call
// starts a new generation; the old one's connections close once idle.
type generation struct {
	bundle     *certload.Bundle
	revs       *certload.Revocations
	transports map[string]*http.Transport
}

// New returns a Client for the peers of cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Certificate == nil || cfg.Tokens == nil {
		return nil, errors.New("agentclient: certificate and token source are required")
	}
	c := &Client{cfg: cfg, urls: make(map[string]string, len(cfg.Peers))}
	for name, url := range cfg.Peers {
		if !strings.HasPrefix(url, "https://") {
			return nil, fmt.Errorf("agentclient: %s URL must be https: %q", name, url)
		}
		c.urls[name] = strings.TrimRight(url, "/")
	}
	c.current()
	return c, nil
}

// current returns the generation of the certificate, CAs and CRL in force,
// starting a new one when they changed (comparing pointers: a source
// publishes a new value only on a change).
func (c *Client) current() *generation {
	b, revs := c.cfg.Certificate.Bundle(), c.revocations()
	if g := c.gen.Load(); g != nil && g.bundle == b && g.revs == revs {
		return g
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.gen.Load()
	if old != nil && old.bundle == b && old.revs == revs {
		return old
	}
	g := c.newGeneration(b, revs)
	c.gen.Store(g)
	if old != nil {
		// A busy connection of the old generation goes back to its idle
		// pool, which nothing draws from any more, and closes after
		// IdleConnTimeout.
		for _, tr := range old.transports {
			tr.CloseIdleConnections()
		}
	}
	return g
}

func (c *Client) revocations() *certload.Revocations {
	if c.cfg.CRL == nil {
		return nil
	}
	return c.cfg.CRL.Revocations()
}

func (c *Client) newGeneration(b *certload.Bundle, revs *certload.Revocations) *generation {
	g := &generation{bundle: b, revs: revs, transports: make(map[string]*http.Transport, len(c.urls))}
	pinned := certload.NewStatic(b)
	var crl certload.CRLSource
	if c.cfg.CRL != nil {
		crl = pinnedCRL{revs}
	}
	// One session cache for all peers: reconnecting resumes the TLS session.
	sessions := tls.NewLRUClientSessionCache(256)
	for name := range c.urls {
		tlsCfg := certload.ClientConfig(pinned, agentapi.AuthorizeAgent(name), certload.ClientOptions{
			ServerName:   agentapi.DNSName(name),
			SkipVerify:   c.cfg.SkipVerify,
			SessionCache: sessions,
			CRL:          crl,
		})
		if counter := c.cfg.HandshakeCounter; counter != nil {
			inner := tlsCfg.VerifyConnection
			tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error {
				counter.Add(1)
				return inner(cs)
			}
		}
		g.transports[name] = &http.Transport{
			TLSClientConfig:     tlsCfg,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
		}
	}
	return g
}

// pinnedCRL is a CRLSource that never changes: a generation's.
type pinnedCRL struct{ r *certload.Revocations }

func (p pinnedCRL) Revocations() *certload.Revocations { return p.r }

// client returns an HTTP client for agent in the current generation. It
// follows no redirect: an agent answers on /message or not at all.
func (c *Client) client(agent string) *http.Client {
	return &http.Client{Transport: c.current().transports[agent], CheckRedirect: certload.RefuseRedirect}
}

// Close releases idle connections.
func (c *Client) Close() {
	for _, tr := range c.gen.Load().transports {
		tr.CloseIdleConnections()
	}
}

// Call invokes method on agent with params and decodes the result into
// result (which may be nil). A JSON-RPC error, an authentication refusal or
// a transport failure comes back as a *CallError carrying the JSON-RPC code;
// jsonrpc.CodeOf reads it.
//
// On a 401 the client drops its token, fetches a fresh one and retries once.
// A call is retried otherwise only when the connection could not be made, so
// the request was never sent.
func (c *Client) Call(ctx context.Context, agent, method string, params, result any) error {
	if c.cfg.Observer == nil {
		return c.call(ctx, agent, method, params, result)
	}
	start := time.Now()
	err := c.call(ctx, agent, method, params, result)
	code := 0
	var ce *CallError
	if errors.As(err, &ce) {
		code = ce.RPC.Code
	} else if err != nil {
		code = jsonrpc.CodeOf(err)
	}
	c.cfg.Observer.CallDone(agent, method, code, time.Since(start))
	return err
}

func (c *Client) call(ctx context.Context, agent, method string, params, result any) error {
	if _, ok := c.urls[agent]; !ok {
		return &CallError{Agent: agent, Method: method, RPC: jsonrpc.Errorf(jsonrpc.CodeInternalError, "unknown agent %q", agent)}
	}
	body, err := c.encode(method, params)
	if err != nil {
		return &CallError{Agent: agent, Method: method, RPC: jsonrpc.InvalidParams("cannot encode params"), Cause: err}
	}
	retriedAuth, retriedDial := false, false
	for {
		resp, err := c.send(ctx, agent, body)
		if err != nil {
			if !retriedDial && isDialError(err) && ctx.Err() == nil {
				retriedDial = true
				continue
			}
			return &CallError{Agent: agent, Method: method, RPC: jsonrpc.Errorf(agentapi.CodeUnavailable, "%s unavailable", agent), Cause: err}
		}
		if resp.status == http.StatusUnauthorized && !retriedAuth {
			retriedAuth = true
			c.cfg.Tokens.Invalidate()
			continue
		}
		return decodeResponse(agent, method, resp, result)
	}
}

type response struct {
	status int
	body   []byte
}

// send posts body to agent with a token. The token is taken before the
// connection (the generation) is chosen: a token source and this client
// follow the same certificate source, so the token is bound to the
// generation's certificate or to a newer one, and then the 401 and its
// retry pick that newer generation.
func (c *Client) send(ctx context.Context, agent string, body []byte) (*response, error) {
	tok, err := tokenWithin(ctx, c.cfg.Tokens)
	if err != nil {
		return nil, fmt.Errorf("agentclient: token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.urls[agent]+"/message", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := c.client(agent).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("agentclient: reading answer: %w", err)
	}
	if len(data) > maxResponseBytes {
		return nil, errors.New("agentclient: answer larger than 64 MiB")
	}
	return &response{status: resp.StatusCode, body: data}, nil
}

// tokenWithin bounds Token by ctx: oauth2.TokenSource takes no context, and
// a token endpoint that hangs must not hold a call past its deadline. The
// fetch itself ends by the token client's own timeout.
func tokenWithin(ctx context.Context, ts TokenSource) (*oauth2.Token, error) {
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tok, err := ts.Token()
		ch <- result{tok, err}
	}()
	select {
	case r := <-ch:
		return r.tok, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Client) encode(method string, params any) ([]byte, error) {
	// jsonrpc.Marshal: extracted data passed on as json.RawMessage keeps
	// the size the extractor counted.
	raw, err := jsonrpc.Marshal(params)
	if err != nil {
		return nil, err
	}
	if params == nil {
		raw = nil
	}
	id := strconv.AppendInt(nil, c.nextID.Add(1), 10)
	return jsonrpc.Marshal(jsonrpc.Request{JSONRPC: jsonrpc.Version, Method: method, Params: raw, ID: id})
}

func decodeResponse(agent, method string, resp *response, result any) error {
	var msg jsonrpc.Response
	jsonErr := json.Unmarshal(resp.body, &msg)
	if resp.status != http.StatusOK {
		code := map[int]int{
			http.StatusUnauthorized:          agentapi.CodeUnauthenticated,
			http.StatusForbidden:             agentapi.CodeForbidden,
			http.StatusRequestEntityTooLarge: agentapi.CodeTooLarge,
		}[resp.status]
		if code == 0 {
			code = agentapi.CodeUnavailable
		}
		e := jsonrpc.Errorf(code, "%s answered HTTP %d", agent, resp.status)
		if jsonErr == nil && msg.Error != nil && msg.Error.Code == code {
			e.Message = msg.Error.Message
		}
		return &CallError{Agent: agent, Method: method, RPC: e}
	}
	if jsonErr != nil {
		return &CallError{Agent: agent, Method: method, RPC: jsonrpc.Errorf(jsonrpc.CodeInternalError, "%s sent a malformed answer", agent), Cause: jsonErr}
	}
	if msg.Error != nil {
		return &CallError{Agent: agent, Method: method, RPC: msg.Error}
	}
	if result == nil || len(msg.Result) == 0 {
		return nil
	}
	if err := json.Unmarshal(msg.Result, result); err != nil {
		return &CallError{Agent: agent, Method: method, RPC: jsonrpc.Errorf(jsonrpc.CodeInternalError, "%s sent an unexpected result", agent), Cause: err}
	}
	return nil
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// CallError is the error of a failed call.
type CallError struct {
	Agent, Method string
	// RPC carries the JSON-RPC code and the message for the caller.
	RPC *jsonrpc.Error
	// Cause is the underlying failure, for logs; it may be nil.
	Cause error
}

func (e *CallError) Error() string {
	msg := fmt.Sprintf("agentclient: %s.%s: %d %s", e.Agent, e.Method, e.RPC.Code, e.RPC.Message)
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap exposes both the JSON-RPC error and the cause to errors.Is/As.
func (e *CallError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.RPC}
	}
	return []error{e.RPC, e.Cause}
}

// Health probes agent's GET /health over mTLS (no token needed) and returns
// nil when it answers 200.
func (c *Client) Health(ctx context.Context, agent string) error {
	url, ok := c.urls[agent]
	if !ok {
		return fmt.Errorf("agentclient: unknown agent %q", agent)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := c.client(agent).Do(req)
	if err != nil {
		return fmt.Errorf("agentclient: %s unreachable: %w", agent, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agentclient: %s health: HTTP %d", agent, resp.StatusCode)
	}
	return nil
}
