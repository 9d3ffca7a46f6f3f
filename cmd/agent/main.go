// Command agent runs one ca-a2a agent; AGENT_NAME chooses the role
// (docs/configuration.md). "agent healthcheck [--strict]" probes the running
// agent's /health over mTLS and exits 0 when the agent answers (the ECS
// container health check); --strict also fails when it reports degraded.
//
// The same binary is the extractor's parse worker: the extractor re-executes
// it with a hidden argument, and sandbox.Main turns that process into a
// worker before anything else runs (it has no environment, so no
// configuration is read).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ca-a2a/ca-a2a/agentsvc"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/config"
	"github.com/ca-a2a/ca-a2a/internal/sandbox"
)

func main() {
	sandbox.Main()
	if err := harden(); err != nil {
		fmt.Fprintln(os.Stderr, "agent: refusing to start:", err)
		os.Exit(2)
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent: refusing to start:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		strict := len(os.Args) > 2 && os.Args[2] == "--strict"
		if err := agentsvc.Healthcheck(ctx, cfg, strict); err != nil {
			fmt.Fprintln(os.Stderr, "agent: unhealthy:", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	err = agentsvc.Run(ctx, cfg, log, nil)
	var startup *agentsvc.StartupError
	switch {
	case errors.As(err, &startup):
		log.Error("refusing to start", "error", err)
		os.Exit(2)
	case err != nil:
		log.Error("agent failed", "error", err)
		os.Exit(1)
	}
}
