package agentapi_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

func TestIdentity(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	tests := []struct {
		dns  []string
		want string
		err  bool
	}{
		{[]string{"lambda.ca-a2a.local"}, "lambda", false},
		{[]string{"LAMBDA.CA-A2A.LOCAL"}, "lambda", false},
		{[]string{"lambda.ca-a2a.local", "lambda.ca-a2a.local"}, "lambda", false},
		{[]string{"x.lambda.ca-a2a.local"}, "", true},
		{[]string{"*.ca-a2a.local"}, "", true},
		{[]string{"lambda.example.com"}, "", true},
		{[]string{"lambda.ca-a2a.local", "orchestrator.ca-a2a.local"}, "", true},
		{nil, "", true},
	}
	for _, tc := range tests {
		got, err := agentapi.Identity(ca.Issue(t, "x", pki.DNS(tc.dns...)).Cert)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("Identity(%v) = %q, %v; want %q, err %v", tc.dns, got, err, tc.want, tc.err)
		}
	}
}

func TestAuthorizeAgent(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	tests := []struct {
		name  string
		dns   []string
		allow []string
		ok    bool
	}{
		{"the agent asked for", []string{"extractor.ca-a2a.local"}, []string{"extractor"}, true},
		{"one of several", []string{"archivist.ca-a2a.local"}, []string{"extractor", "archivist"}, true},
		{"another agent", []string{"validator.ca-a2a.local"}, []string{"extractor"}, false},
		{"a wildcard is no identity", []string{"*.ca-a2a.local"}, []string{"extractor"}, false},
		{"a name outside the domain", []string{"extractor.example.com"}, []string{"extractor"}, false},
		{"nobody allowed", []string{"extractor.ca-a2a.local"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := agentapi.AuthorizeAgent(tc.allow...)(ca.Issue(t, "x", pki.DNS(tc.dns...)).Cert)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, certload.ErrUnauthorizedPeer) {
				t.Fatalf("err = %v, want certload.ErrUnauthorizedPeer", err)
			}
		})
	}
}

func TestRoster(t *testing.T) {
	if got := agentapi.AgentNames(); !slices.Equal(got, []string{"orchestrator", "extractor", "validator", "archivist"}) {
		t.Fatalf("agents %v", got)
	}
	if got := agentapi.Principals(); !slices.Equal(got, []string{"orchestrator", "extractor", "validator", "archivist", "lambda", "keycloak"}) {
		t.Fatalf("principals %v", got)
	}
	for name, want := range map[string]string{
		"orchestrator": "https://orchestrator.ca-a2a.local:8001", "extractor": "https://extractor.ca-a2a.local:8002",
		"validator": "https://validator.ca-a2a.local:8003", "archivist": "https://archivist.ca-a2a.local:8004",
		"lambda": "", "keycloak": "",
	} {
		if got := agentapi.URL(name); got != want {
			t.Errorf("URL(%s) = %q, want %q", name, got, want)
		}
		if agentapi.IsAgent(name) != (want != "") {
			t.Errorf("IsAgent(%s) = %v", name, agentapi.IsAgent(name))
		}
	}
	for _, p := range agentapi.Peers() {
		if !agentapi.IsAgent(p) || p == agentapi.Orchestrator {
			t.Errorf("peer %q", p)
		}
	}
	// The lists are copies: a caller cannot change the roster.
	agentapi.Agents()[0].Port = 1
	agentapi.AgentNames()[0] = "x"
	if p, _ := agentapi.Port("orchestrator"); p != 8001 || agentapi.AgentNames()[0] != "orchestrator" {
		t.Fatal("the roster changed through a returned slice")
	}
	if agentapi.TokenEndpoint(agentapi.DefaultIssuer) != "https://keycloak.ca-a2a.local:8443/realms/ca-a2a/protocol/openid-connect/token" ||
		agentapi.JWKSEndpoint(agentapi.DefaultIssuer) != "https://keycloak.ca-a2a.local:8443/realms/ca-a2a/protocol/openid-connect/certs" {
		t.Fatal("identity provider URL shapes")
	}
}

func TestDefaultPolicy(t *testing.T) {
	for _, agent := range agentapi.AgentNames() {
		p, ok := agentapi.DefaultPolicy(agent)
		if !ok || !slices.Equal(p[agentapi.MethodListSkills], []string{agentapi.AnyCaller}) || !slices.Equal(p[agentapi.MethodGetHealth], []string{agentapi.AnyCaller}) {
			t.Fatalf("%s: %v", agent, p)
		}
		for m, callers := range p {
			for _, c := range callers {
				if c != agentapi.AnyCaller && !slices.Contains(agentapi.Principals(), c) {
					t.Errorf("%s.%s admits %q, who is not on the roster", agent, m, c)
				}
			}
		}
	}
	if _, ok := agentapi.DefaultPolicy(agentapi.Keycloak); ok {
		t.Fatal("a policy for a principal that serves no method")
	}
	p, _ := agentapi.DefaultPolicy(agentapi.Archivist)
	p[agentapi.MethodArchiveDocument][0] = agentapi.Lambda
	if again, _ := agentapi.DefaultPolicy(agentapi.Archivist); again[agentapi.MethodArchiveDocument][0] != agentapi.Orchestrator {
		t.Fatal("the default policy changed through a returned map")
	}
}

func TestTransitions(t *testing.T) {
	for _, from := range []string{agentapi.StatusArchived, agentapi.StatusRejected, agentapi.StatusFailed} {
		for _, to := range agentapi.AllowedFrom(from) {
			if !agentapi.ValidStatus(to) || to == from || !agentapi.CanTransition(from, to) {
				t.Errorf("transition %s -> %s", from, to)
			}
		}
	}
	if agentapi.CanTransition(agentapi.StatusArchived, agentapi.StatusFailed) || agentapi.CanTransition(agentapi.StatusRejected, agentapi.StatusFailed) {
		t.Error("a judged document may not become failed")
	}
	if agentapi.ValidStatus("deleted") || len(agentapi.AllowedFrom("deleted")) != 0 {
		t.Error("unknown status")
	}
}
