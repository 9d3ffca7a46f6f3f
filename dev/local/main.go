// Command local runs the system on this machine (docs/operations.md, Running
// it; docs/configuration.md, Local runs):
//
//	go run ./dev/local demo          the whole story, end to end, then stop
//	go run ./dev/local run-agents    identity provider and four agents, until Ctrl-C
//	go run ./dev/local invoke FILE   one event through the Lambda bootstrap under the emulator
//
// Everything listens on 127.0.0.1; state lives under ./.local. ARCHIVE=postgres
// puts the archivist on a throwaway PostgreSQL cluster started and stopped
// with the rest (ARCHIVE=sqlite, the default: a file under ./.local/archive).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ca-a2a/ca-a2a/dev/localrun"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: local demo | run-agents | invoke EVENT_FILE")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	layout, err := localrun.FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "demo":
		err = demo(ctx, layout)
	case "run-agents":
		err = runAgents(ctx, layout)
	case "invoke":
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: local invoke EVENT_FILE")
			os.Exit(2)
		}
		err = invoke(ctx, layout, os.Args[2])
	default:
		fmt.Fprintf(os.Stderr, "local: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(1)
	}
}

// up starts moto_server (and publishes the secrets), the identity provider,
// with ARCHIVE=postgres a throwaway PostgreSQL cluster, and the agents,
// printing one line per step.
func up(ctx context.Context, l localrun.Layout, g *localrun.Group, s *steps) error {
	if err := s.do("certificates", func() (string, error) {
		return "CA and 6 identities in " + l.CertsDir, l.Certs()
	}); err != nil {
		return err
	}
	if err := s.do("secrets manager (moto_server)", func() (string, error) {
		started, err := l.StartMoto(ctx, g)
		if err != nil {
			return "", err
		}
		if err := l.Publish(ctx, []string{agentapi.Lambda}); err != nil {
			return "", err
		}
		how := "reused"
		if started {
			how = "started"
		}
		return fmt.Sprintf("%s on %s; ca-a2a/lambda-cert, -key and ca-cert published", how, l.MotoEndpoint()), nil
	}); err != nil {
		return err
	}
	if err := s.do("identity provider", func() (string, error) {
		return fmt.Sprintf("https://127.0.0.1:%d, issuer %s", l.IdPPort, l.Issuer()), l.StartIdP(ctx, g)
	}); err != nil {
		return err
	}
	archive := "SQLite " + l.StateDir + "/archive/archive.db"
	if l.Archive == localrun.ArchivePostgres {
		if err := s.do("archive database (ARCHIVE=postgres)", func() (string, error) {
			addr, err := l.StartArchiveDB(g)
			return "throwaway PostgreSQL cluster on " + addr + ", database archive, role archivist (password in ARCHIVE_DB_PASSWORD)", err
		}); err != nil {
			return err
		}
		archive = "PostgreSQL"
	}
	return s.do("agents", func() (string, error) {
		return agentPorts() + " healthy (archive: " + archive + ")", l.StartAgents(ctx, g)
	})
}

func runAgents(ctx context.Context, l localrun.Layout) error {
	var g localrun.Group
	defer g.Stop()
	s := newSteps()
	if err := up(ctx, l, &g, s); err != nil {
		return err
	}
	fmt.Println("running; logs in", l.StateDir+"/logs; Ctrl-C stops everything")
	<-ctx.Done()
	fmt.Println("stopping")
	return nil
}

func invoke(ctx context.Context, l localrun.Layout, file string) error {
	event, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	client, err := l.Client(agentapi.Lambda, agentapi.Orchestrator)
	if err != nil {
		return fmt.Errorf("%w (run make certs first)", err)
	}
	if err := localrun.WaitHTTP(ctx, client, localrun.AgentURL(agentapi.Orchestrator)+"/health", 0, 2e9); err != nil {
		port, _ := agentapi.Port(agentapi.Orchestrator)
		return fmt.Errorf("the orchestrator is not running on 127.0.0.1:%d: start it with \"make run-agents\" in another terminal", port)
	}
	var g localrun.Group
	defer g.Stop()
	if _, err := l.StartMoto(ctx, &g); err != nil {
		return err
	}
	if err := l.Publish(ctx, []string{agentapi.Lambda}); err != nil {
		return err
	}
	answer, err := l.Invoke(ctx, event)
	fmt.Println(string(answer))
	return err
}

// agentPorts lists the agents with their ports, in port order:
// "orchestrator :8001, extractor :8002, ...".
func agentPorts() string {
	var parts []string
	for _, a := range agentapi.Agents() {
		parts = append(parts, fmt.Sprintf("%s :%d", a.Name, a.Port))
	}
	return strings.Join(parts, ", ")
}
