package agentproc_test

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/agentproc"
)

// fakeAgentEnv makes this test binary a stand-in agent: it says it is
// listening, then waits for SIGTERM and exits with the status it names.
const fakeAgentEnv = "AGENTPROC_FAKE_AGENT_EXIT"

func TestMain(m *testing.M) {
	if code, ok := os.LookupEnv(fakeAgentEnv); ok {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, `{"msg":"agent listening"}`)
		<-term
		var n int
		fmt.Sscan(code, &n)
		os.Exit(n)
	}
	os.Exit(m.Run())
}

func TestStartWaitStop(t *testing.T) {
	tests := []struct {
		name    string
		exit    string
		kill    bool
		stopErr bool
	}{
		{name: "stops cleanly on SIGTERM", exit: "0"},
		{name: "a non-zero exit after SIGTERM is reported", exit: "3", stopErr: true},
		{name: "killed", exit: "0", kill: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := agentproc.Start(t, agentproc.Config{Bin: os.Args[0], Env: map[string]string{fakeAgentEnv: tc.exit}, Kill: tc.kill})
			p.WaitUntil(t, "listen", func() bool { return strings.Contains(p.Output.String(), "agent listening") })
			if !p.Alive() || p.Pid() <= 0 {
				t.Fatalf("alive %v, pid %d", p.Alive(), p.Pid())
			}
			if tc.kill {
				p.Kill()
			} else if err := p.Stop(); (err != nil) != tc.stopErr {
				t.Fatalf("Stop = %v, want an error: %v", err, tc.stopErr)
			}
			if p.Alive() {
				t.Fatal("alive after it was stopped")
			}
		})
	}
}
