package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/agentclient"
)

// HandshakeResult is the time of one A2A call (get_health over POST
// /message, the whole auth chain) on each kind of connection.
type HandshakeResult struct {
	Calls int `json:"calls"`
	// Full: a new client per call, so a new connection and a full TLS 1.3
	// handshake with both certificates verified.
	Full time.Duration `json:"full_ns"`
	// Resumed: one client whose idle connections are closed before each
	// call, so a new connection resumed from a session ticket.
	Resumed time.Duration `json:"resumed_ns"`
	// Reused: one client, one keep-alive connection, no handshake.
	Reused time.Duration `json:"reused_ns"`
	// ResumedSeen and HandshakesSeen are the server's counts during the
	// resumed and reused phases: they prove each phase is what it says.
	ResumedSeen, ResumedHandshakes, ReusedHandshakes int64
}

// Handshakes times calls of the agent client against agent, calls per mode,
// the three modes interleaved call by call, and returns the median of each.
func Handshakes(ctx context.Context, tb testing.TB, f *Fixture, agent *Agent, calls int) HandshakeResult {
	tb.Helper()
	newClient := func(counter *atomic.Int64) *agentclient.Client {
		c, err := agentclient.New(agentclient.Config{Certificate: f.ClientSrc, Tokens: f.Tokens(),
			Peers: map[string]string{agent.Name: agent.URL}, HandshakeCounter: counter})
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	call := func(c *agentclient.Client) time.Duration {
		var res map[string]any
		start := time.Now()
		if err := c.Call(ctx, agent.Name, agentapi.MethodGetHealth, nil, &res); err != nil {
			tb.Fatalf("get_health: %v", err)
		}
		d := time.Since(start)
		if res["status"] != "healthy" {
			tb.Fatalf("get_health answered %v", res)
		}
		return d
	}
	resumed, reused := newClient(nil), newClient(nil)
	defer resumed.Close()
	defer reused.Close()
	// Warm both: a session ticket for one, an open connection for the other.
	call(resumed)
	call(reused)

	var full, res, keep []time.Duration
	var resumedSeen, resumedHS, reusedHS int64
	for i := 0; i < calls && ctx.Err() == nil; i++ {
		c := newClient(nil)
		full = append(full, call(c))
		c.Close()

		resumed.Close()
		r0, h0 := agent.Resumed.Load(), agent.Handshakes.Load()
		res = append(res, call(resumed))
		resumedSeen += agent.Resumed.Load() - r0
		resumedHS += agent.Handshakes.Load() - h0

		h1 := agent.Handshakes.Load()
		keep = append(keep, call(reused))
		reusedHS += agent.Handshakes.Load() - h1
	}
	out := HandshakeResult{Calls: len(full), Full: median(full), Resumed: median(res), Reused: median(keep),
		ResumedSeen: resumedSeen, ResumedHandshakes: resumedHS, ReusedHandshakes: reusedHS}
	if out.ReusedHandshakes != 0 {
		tb.Errorf("handshakes: the keep-alive phase saw %d handshakes", out.ReusedHandshakes)
	}
	return out
}

func (h HandshakeResult) String() string {
	return fmt.Sprintf("full %s, resumed %s, reused %s per call (median of %d)", ms(h.Full), ms(h.Resumed), ms(h.Reused), h.Calls)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }
