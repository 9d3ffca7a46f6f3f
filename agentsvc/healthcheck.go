package agentsvc

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/config"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// Healthcheck calls this agent's own /health over mTLS with its own
// certificate, as an ECS container health check does. It returns nil when
// the agent answers: 200, or 503 (a dependency is down, the agent itself
// works) unless strict. A restart would not bring a peer back, so a liveness
// probe must not fail on a peer's outage.
func Healthcheck(ctx context.Context, cfg *config.Config, strict bool) error {
	src, closeCert, err := certload.Load(cfg.Cert, certload.Options{Usage: certload.UsageServerAndClient})
	if err != nil {
		return err
	}
	defer closeCert()
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("AGENT_ADDR %q: %w", cfg.Addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme, tr := "https", &http.Transport{
		TLSClientConfig: certload.ClientConfig(src, agentapi.AuthorizeAgent(cfg.Name), certload.ClientOptions{ServerName: agentapi.DNSName(cfg.Name), SkipVerify: !cfg.VerifyServer}),
	}
	if !cfg.MTLSEnabled {
		scheme = "http"
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusServiceUnavailable && !strict:
		fmt.Fprintf(os.Stderr, "agent: degraded: %s\n", body)
		return nil
	default:
		return fmt.Errorf("health: HTTP %d: %s", resp.StatusCode, body)
	}
}
