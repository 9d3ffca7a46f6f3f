package extractor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// TestTimeLimitClasses: a worker killed by the time limit blames the
// document only when it used at least MinCPUShare of its time on the CPU;
// a starved one is transient.
func TestTimeLimitClasses(t *testing.T) {
	e := &Extractor{log: slog.New(slog.DiscardHandler), minCPUShare: MinCPUShare}
	wall := 20 * time.Second
	tests := []struct {
		name    string
		err     error
		code    int
		message string
	}{
		{"used all its time", &sandbox.RunError{Kind: sandbox.ErrTimeLimit, CPUTime: 19 * time.Second, Wall: wall},
			jsonrpc.CodeInvalidParams, "document could not be parsed: time limit"},
		{"used half its time", &sandbox.RunError{Kind: sandbox.ErrTimeLimit, CPUTime: 10 * time.Second, Wall: wall},
			jsonrpc.CodeInvalidParams, "document could not be parsed: time limit"},
		{"starved: a quarter of a CPU", &sandbox.RunError{Kind: sandbox.ErrTimeLimit, CPUTime: 5 * time.Second, Wall: wall},
			agentapi.CodeUnavailable, "extractor overloaded"},
		{"starved: no CPU at all", &sandbox.RunError{Kind: sandbox.ErrTimeLimit, Wall: wall},
			agentapi.CodeUnavailable, "extractor overloaded"},
		{"other limits ignore CPU time", &sandbox.RunError{Kind: sandbox.ErrMemoryLimit, Wall: wall},
			jsonrpc.CodeInvalidParams, "document could not be parsed: memory limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.runError(context.Background(), "a.pdf", agentapi.ExtractFailure{DocumentType: "pdf"}, tc.err)
			if jsonrpc.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("%v, want %d %q", err, tc.code, tc.message)
			}
			var rpc *jsonrpc.Error
			if errors.As(err, &rpc) && agentapi.Permanent(rpc.Code) != (tc.code == jsonrpc.CodeInvalidParams) {
				t.Fatalf("class of %v", err)
			}
		})
	}
}
