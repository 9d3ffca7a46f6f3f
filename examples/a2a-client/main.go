// Command a2a-client calls a ca-a2a agent with a2a-go's standard A2A client
// (README, "Calling an agent over A2A"): it resolves the agent card over
// mTLS, gets a certificate-bound token at the card's token URL, sends
// message/send with a DataPart naming the skill, prints the Task, and reads
// it back with tasks/get. Against `make run-agents`:
//
//	go run ./examples/a2a-client --connect 127.0.0.1 --params '{"s3_key":"incoming/hello.csv"}'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/ca-a2a/ca-a2a/shared/a2acaller"
	"github.com/ca-a2a/ca-a2a/shared/a2askill"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

type options struct {
	agent, connect, certsDir, as, skill, params string
	timeout                                     time.Duration
}

func main() {
	var o options
	certsDir := os.Getenv("CERTS_DIR")
	if certsDir == "" {
		certsDir = "./certs"
	}
	flag.StringVar(&o.agent, "agent", agentapi.URL(agentapi.Orchestrator), "the agent's base URL; its card is at /.well-known/agent-card.json")
	flag.StringVar(&o.connect, "connect", "", "connect to this host instead of the URLs' hosts (127.0.0.1 for make run-agents); servers are still verified by name")
	flag.StringVar(&o.certsDir, "certs-dir", certsDir, "certgen's directory (CERTS_DIR)")
	flag.StringVar(&o.as, "as", agentapi.Lambda, "the identity to call as, from certs-dir/agents/NAME/")
	flag.StringVar(&o.skill, "skill", agentapi.MethodProcessDocument, "the skill (method) to call")
	flag.StringVar(&o.params, "params", `{"s3_key":"incoming/hello.csv"}`, "the skill's params, a JSON object")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Minute, "bound on the whole run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "a2a-client:", err)
		os.Exit(1)
	}
}

// errTaskFailed: the skill answered an error (the Task, printed, says which).
var errTaskFailed = errors.New("the task failed")

func run(ctx context.Context, out io.Writer, o options) error {
	leaf := filepath.Join(o.certsDir, "agents", o.as, o.as)
	src, closeCert, err := certload.Load(certload.Config{CertPath: leaf + "-cert.pem", KeyPath: leaf + "-key.pem",
		CAPath: filepath.Join(o.certsDir, "ca", "ca-bundle.pem")}, certload.Options{PollInterval: time.Hour})
	if err != nil {
		return err
	}
	defer closeCert()
	agent, err := a2acaller.Dial(ctx, a2acaller.Config{Certificate: src, Connect: o.connect}, o.agent)
	if err != nil {
		return err
	}
	defer agent.Close()
	fmt.Fprintf(out, "agent card: %s, A2A %s, %s at %s, %d skills\n", agent.Card.Name, agent.Card.ProtocolVersion,
		agent.Card.PreferredTransport, agent.Card.URL, len(agent.Card.Skills))

	msg, err := a2askill.Message(o.skill, json.RawMessage(o.params))
	if err != nil {
		return err
	}
	res, err := agent.Client.SendMessage(ctx, &a2a.MessageSendParams{Message: msg})
	if err != nil {
		return fmt.Errorf("message/send: %w", err)
	}
	task, ok := res.(*a2a.Task)
	if !ok {
		return fmt.Errorf("message/send answered a %T, not a Task", res)
	}
	printed, err := json.MarshalIndent(task, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "message/send -> task %s %s\n%s\n", task.ID, task.Status.State, printed)

	again, err := agent.Client.GetTask(ctx, &a2a.TaskQueryParams{ID: task.ID})
	if err != nil {
		return fmt.Errorf("tasks/get: %w", err)
	}
	fmt.Fprintf(out, "tasks/get %s -> %s\n", again.ID, again.Status.State)
	if err := a2askill.Result(task, nil); err != nil {
		return fmt.Errorf("%w: %w", errTaskFailed, err)
	}
	return nil
}
