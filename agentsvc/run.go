package agentsvc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/config"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/policy"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/server"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

// ShutdownGrace bounds how long requests in flight may take to finish after
// SIGTERM (ECS waits stopTimeout, 30s, before SIGKILL).
const ShutdownGrace = 25 * time.Second

// StartupError is a configuration or certificate problem: the agent must not
// start. cmd/agent exits 2 on it.
type StartupError struct{ Err error }

func (e *StartupError) Error() string { return e.Err.Error() }
func (e *StartupError) Unwrap() error { return e.Err }

func startup(err error) error { return &StartupError{Err: err} }

// Run serves the agent cfg describes until ctx is done, then drains
// requests in flight. ready, when not nil, receives the listening address.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, ready func(addr string)) error {
	log = log.With("agent", cfg.Name)
	for _, w := range cfg.Warnings() {
		log.Warn("protection switched off", "detail", w)
	}
	certOpts := certload.Options{Usage: certload.UsageServerAndClient, Logger: log, PollInterval: cfg.PollInterval}
	src, closeCert, err := certload.Load(cfg.Cert, certOpts)
	if err != nil {
		return startup(err)
	}
	defer closeCert()
	if id, err := agentapi.Identity(src.Bundle().Leaf()); err != nil || id != cfg.Name {
		return startup(fmt.Errorf("certificate identity %q does not match AGENT_NAME %q", id, cfg.Name))
	}
	// The CRL is checked against the CAs of src, again whenever they change.
	watcher, err := certload.LoadCRL(ctx, cfg.CRL, src, certOpts)
	if err != nil {
		return startup(fmt.Errorf("revocation list (%s): %w", cfg.CRL.Variable(), err))
	}
	defer watcher.Close()
	var crl certload.CRLSource // nil without a CRL, not a nil *CRLWatcher
	if watcher != nil {
		crl = watcher
	}

	var emfOut io.Writer
	if cfg.EMF {
		emfOut = os.Stdout // logs are on stderr: stdout carries the EMF lines only
	}
	m := metrics.New(metrics.Options{Agent: cfg.Name, Certificate: src, EMF: emfOut, Logger: log})

	idp := tokensource.ProviderClient(src, cfg.ServerName, tokensource.ProviderClientOptions{Timeout: 10 * time.Second, SkipVerify: !cfg.VerifyServer, CRL: crl})
	keys, err := binding.NewKeySet(ctx, cfg.JWKSURL, binding.KeySetOptions{Client: idp, Logger: log, OnRefresh: m.JWKSRefreshed, RefreshInterval: cfg.JWKSRefresh})
	if err != nil {
		return startup(err)
	}
	defer keys.Close()
	verifier, err := binding.NewVerifier(binding.Config{Issuer: cfg.Issuer, Audience: cfg.Audience, Keys: keys,
		BindingEnabled: cfg.BindingEnabled, BindingRequired: cfg.BindingRequired, Logger: log})
	if err != nil {
		return startup(err)
	}

	agent, closeAgent, err := build(ctx, cfg, src, crl, log, m)
	if err != nil {
		return startup(err)
	}
	defer closeAgent()
	agent.Checks["jwks"] = func(context.Context) error {
		st := keys.Status()
		if st.Keys == 0 {
			return fmt.Errorf("no signing keys cached (last fetch: %v)", st.LastError)
		}
		return nil
	}

	pol, err := loadPolicy(cfg, agent)
	if err != nil {
		return startup(err)
	}
	cardURL, cardTokenURL := cardURLs(cfg)
	srv, err := server.New(server.Options{Agent: agent, Policy: pol, Verifier: verifier, Logger: log,
		URL: cardURL, TokenURL: cardTokenURL, Metrics: m, Certificate: src,
		// Every request: the connection's certificate is still valid, its
		// CA still trusted and it is not revoked (docs/operations.md).
		PeerCheck: func(chain []*x509.Certificate) error {
			return certload.CheckPeer(chain, src.Bundle(), watcher.Revocations(), time.Now())
		}})
	if err != nil {
		return startup(err)
	}
	var tlsCfg = certload.ServerConfig(src, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: cfg.RequireClientCert, CRL: crl})
	if !cfg.MTLSEnabled {
		tlsCfg = nil
	}
	httpSrv := srv.HTTPServer(cfg.Addr, tlsCfg)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return startup(fmt.Errorf("listen %s: %w", cfg.Addr, err))
	}
	log.Info("agent listening", "addr", ln.Addr().String(), "mtls", cfg.MTLSEnabled, "token_binding", cfg.BindingEnabled)
	if ready != nil {
		ready(ln.Addr().String())
	}
	// The metrics outlive the server: their last flush, after the drain,
	// counts every request served.
	mctx, stopMetrics := context.WithCancel(context.Background())
	mdone := make(chan struct{})
	go func() { defer close(mdone); m.Run(mctx) }()
	defer func() { stopMetrics(); <-mdone }()
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errc <- httpSrv.ServeTLS(ln, "", "")
		} else {
			errc <- httpSrv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; draining requests in flight", "grace", ShutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// cardURLs returns the URLs the agent card publishes: the agent's own and
// the identity provider's token endpoint, each with the host name its
// server's certificate carries (<name>.ca-a2a.local, OIDC_SERVER_NAME) and
// the port and path configured (<NAME>_URL, OIDC_TOKEN_URL). A standard A2A
// client verifies a server by the host of the URL it is given; local runs
// configure 127.0.0.1, which no certificate names.
func cardURLs(cfg *config.Config) (agent, token string) {
	agent, token = cfg.PeerURLs[cfg.Name], cfg.TokenURL
	if u, err := url.Parse(agent); err == nil && u.Host != "" {
		agent = "https://" + withPort(agentapi.DNSName(cfg.Name), u.Port())
	}
	if u, err := url.Parse(token); err == nil && u.Host != "" && cfg.ServerName != "" {
		u.Host = withPort(cfg.ServerName, u.Port())
		token = u.String()
	}
	return agent, token
}

func withPort(host, port string) string {
	if port == "" {
		return host
	}
	return net.JoinHostPort(host, port)
}

func loadPolicy(cfg *config.Config, agent server.Agent) (*policy.Policy, error) {
	if cfg.PolicyFile == "" {
		return policy.Default(cfg.Name)
	}
	return policy.Load(cfg.PolicyFile, cfg.Name, agent.Offered())
}
