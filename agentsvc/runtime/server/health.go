package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// healthTTL: /health answers from a recent report instead of probing the
// dependencies on every call (load balancers and peers poll it).
const healthTTL = 2 * time.Second

// Health runs the checks (or reuses a report younger than healthTTL) and
// returns the HTTP status (200, or 503 when a check fails) and the report.
func (s *Server) Health(ctx context.Context) (int, agentapi.HealthReport) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if time.Since(s.healthAt) < healthTTL {
		r := s.healthBody
		r.UptimeS = int64(time.Since(s.started).Seconds())
		return s.healthCode, r
	}
	// The report is shared by every caller for healthTTL: the checks run
	// on their own deadline, not the first caller's, so a caller that
	// hangs up mid-probe does not leave a failing report for the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	report := agentapi.HealthReport{Status: agentapi.HealthHealthy, Agent: s.opts.Agent.Name, Version: s.opts.Agent.Version,
		UptimeS: int64(time.Since(s.started).Seconds()), Checks: map[string]agentapi.CheckResult{}}
	if s.opts.Certificate != nil {
		// Informational: a certificate close to its expiry still serves,
		// so it never makes the agent unhealthy (the metrics warn).
		days := int(math.Floor(time.Until(s.opts.Certificate.Bundle().Leaf().NotAfter).Hours() / 24))
		report.ExpiresInDays = &days
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	run := func(name string, check DetailedCheck) {
		details, err := check(ctx)
		res := agentapi.CheckResult{Status: agentapi.CheckOK, Details: details}
		if err != nil {
			// The cause goes to the log; callers learn only which check fails.
			res.Status, res.Error = agentapi.CheckFailing, "unavailable"
			s.log.Warn("health check failing", "check", name, "error", err)
		}
		mu.Lock()
		report.Checks[name] = res
		mu.Unlock()
	}
	for name, check := range s.opts.Agent.Checks {
		wg.Go(func() { run(name, func(ctx context.Context) (any, error) { return nil, check(ctx) }) })
	}
	for name, check := range s.opts.Agent.DetailedChecks {
		wg.Go(func() { run(name, check) })
	}
	wg.Wait()
	code := http.StatusOK
	for _, c := range report.Checks {
		if c.Status != agentapi.CheckOK {
			report.Status, code = agentapi.HealthDegraded, http.StatusServiceUnavailable
		}
	}
	s.healthAt, s.healthCode, s.healthBody = time.Now(), code, report
	return code, report
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		notFound(w)
		return
	}
	code, report := s.Health(r.Context())
	writeJSON(w, code, report)
}

// builtins are the methods every agent offers.
func (s *Server) builtins() []skill.Method {
	return []skill.Method{
		{Name: agentapi.MethodListSkills, Description: "List the methods this agent offers.", Handler: s.listSkills},
		{Name: agentapi.MethodGetHealth, Description: "Report this agent's health and its dependencies'.", Handler: func(ctx context.Context, params json.RawMessage) (any, error) {
			if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
				return nil, err
			}
			_, report := s.Health(ctx)
			return report, nil
		}},
	}
}

func (s *Server) listSkills(_ context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	return agentapi.SkillList{Agent: s.opts.Agent.Name, Skills: s.skills()}, nil
}

func (s *Server) skills() []agentapi.SkillInfo {
	out := make([]agentapi.SkillInfo, 0, len(s.methods))
	for _, m := range s.methods {
		out = append(out, agentapi.SkillInfo{ID: m.Name, Name: m.Name, Description: m.Description})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// serveMetrics serves the agent's metrics (Prometheus text format) to a
// caller the policy admits to agentapi.RouteMetrics: a client certificate
// that names a principal; no token.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		notFound(w)
		return
	}
	caller := ""
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		caller, _ = agentapi.Identity(r.TLS.PeerCertificates[0])
	}
	infoOf(r.Context()).caller = caller
	if err := s.opts.Policy.Allow(caller, agentapi.RouteMetrics); err != nil {
		s.log.Warn("scrape denied by policy", "request_id", infoOf(r.Context()).id, "caller", caller, "reason", agentapi.ReasonMethodForbidden)
		s.refuse(w, r, http.StatusForbidden, agentapi.ReasonMethodForbidden,
			refusal(agentapi.CodeForbidden, agentapi.ReasonMethodForbidden, fmt.Sprintf("caller %q may not read %s", caller, r.URL.Path)))
		return
	}
	s.metrics.Handler().ServeHTTP(w, r)
}
