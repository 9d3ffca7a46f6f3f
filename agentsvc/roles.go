package agentsvc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/archivist"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/orchestrator"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/validator"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/config"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/server"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/documents"
	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/agentclient"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

var descriptions = map[string]string{
	agentapi.Orchestrator: "Runs the document pipeline: extract, validate, archive.",
	agentapi.Extractor:    "Extracts text from PDFs and rows from CSVs.",
	agentapi.Validator:    "Scores extracted documents against named rules.",
	agentapi.Archivist:    "Keeps processed documents and their status.",
}

// build assembles the role cfg.Name: its skills, its health checks, its own
// metrics and what must be closed at exit.
func build(ctx context.Context, cfg *config.Config, src certload.Source, crl certload.CRLSource, log *slog.Logger, m *metrics.Agent) (server.Agent, func(), error) {
	agent := server.Agent{Name: cfg.Name, Description: descriptions[cfg.Name], Checks: map[string]server.HealthCheck{}}
	noop := func() {}
	switch cfg.Name {
	case agentapi.Extractor:
		store, err := documents.Open(ctx, cfg.DocumentsURL)
		if err != nil {
			return agent, noop, err
		}
		// The sandbox needs sandbox.Main at the start of the binary
		// (cmd/agent, and TestMain of tests that run an extractor); without
		// it NewPool refuses and the agent does not start.
		pool, err := sandbox.NewPool(sandbox.Config{
			Workers: cfg.Extract.Workers, Timeout: cfg.Extract.Timeout, MemoryLimit: cfg.Extract.MemoryLimit,
			MaxDocumentBytes: cfg.Extract.MaxBytes, MaxOutputBytes: agentapi.MaxExtractedDataBytes,
		})
		if err != nil {
			return agent, noop, err
		}
		log.Info("extractor: parses run in sandboxed workers", "workers", cfg.Extract.Workers, "timeout", cfg.Extract.Timeout.String(),
			"memory_limit", cfg.Extract.MemoryLimit, "max_bytes", cfg.Extract.MaxBytes, "landlock_abi", pool.LandlockABI())
		if pool.LandlockABI() == 0 {
			log.Warn("extractor: Landlock unavailable: workers run without filesystem confinement (the other limits apply)")
		}
		ex := extractor.New(store, pool, extractor.Options{Logger: log})
		agent.Methods = ex.Methods()
		m.SetWorkers(func() metrics.Workers {
			st := ex.Stats()
			return metrics.Workers{Busy: st.Busy, Total: st.Total, Killed: st.KilledSinceStart}
		})
		agent.Checks["documents"] = store.Ping
		agent.DetailedChecks = map[string]server.DetailedCheck{"extract_workers": func(context.Context) (any, error) {
			st := ex.Stats()
			return agentapi.ExtractWorkers{Busy: st.Busy, Total: st.Total, KilledSinceStart: st.KilledSinceStart, Landlock: pool.LandlockABI()}, nil
		}}
		return agent, noop, nil
	case agentapi.Validator:
		agent.Methods = validator.New(validator.Options{}).Methods()
		return agent, noop, nil
	case agentapi.Archivist:
		// A PostgreSQL store that cannot reach its database yet still
		// opens: it retries in the background, answers -32002 and fails the
		// "archive" check meanwhile (docs/operations.md).
		store, err := archive.Open(ctx, cfg.Archive, log)
		if err != nil {
			return agent, noop, err
		}
		agent.Methods = archivist.New(store, archivist.WithLogger(log)).Methods()
		agent.Checks["archive"] = store.Ping
		return agent, func() { store.Close() }, nil
	case agentapi.Orchestrator:
		tokens, err := tokensource.New(tokensource.Config{TokenURL: cfg.TokenURL, ClientID: cfg.ClientID, Certificate: src,
			ServerName: cfg.ServerName, CRL: crl, Logger: log})
		if err != nil {
			return agent, noop, err
		}
		peers := map[string]string{}
		for _, p := range agentapi.Peers() {
			peers[p] = cfg.PeerURLs[p]
		}
		m.EnablePeerCalls()
		client, err := agentclient.New(agentclient.Config{Certificate: src, Tokens: tokens, Peers: peers, SkipVerify: !cfg.VerifyServer, Observer: m, CRL: crl})
		if err != nil {
			return agent, noop, err
		}
		store, err := documents.Open(ctx, cfg.DocumentsURL)
		if err != nil {
			return agent, noop, err
		}
		agent.Methods = orchestrator.New(client, store, orchestrator.Options{Bucket: store.Bucket(), Peers: agentapi.Peers()}).Methods()
		for _, p := range agentapi.Peers() {
			agent.Checks["peer:"+p] = func(ctx context.Context) error { return client.Health(ctx, p) }
		}
		return agent, client.Close, nil
	}
	return agent, noop, fmt.Errorf("unknown agent %q", cfg.Name)
}
