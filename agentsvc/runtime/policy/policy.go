// Package policy decides which caller may call which method. The caller is
// the agent name in the SAN of the presented, bound certificate; nothing in
// the token (roles, scopes, azp, sub) ever grants a method.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// Any allows every CA-issued caller.
const Any = agentapi.AnyCaller

// ErrForbidden: the caller may not call the method.
var ErrForbidden = errors.New("policy: caller is not allowed to call this method")

// Policy maps each method of one agent to the callers allowed to call it. A
// method absent from the policy is refused to everyone.
type Policy struct {
	methods map[string][]string
}

// Allow reports whether caller may call method. An empty caller (no
// certificate identity) is never allowed.
func (p *Policy) Allow(caller, method string) error {
	if caller == "" {
		return ErrForbidden
	}
	callers := p.methods[method]
	if slices.Contains(callers, Any) || slices.Contains(callers, caller) {
		return nil
	}
	return ErrForbidden
}

// Callers returns who may call method (for the agent card and logs).
func (p *Policy) Callers(method string) []string { return slices.Clone(p.methods[method]) }

// Default returns the default policy of agent (agentapi.DefaultPolicy; see
// docs/contract.md, Methods).
func Default(agent string) (*Policy, error) {
	m, ok := agentapi.DefaultPolicy(agent)
	if !ok {
		return nil, fmt.Errorf("policy: unknown agent %q", agent)
	}
	return &Policy{methods: m}, nil
}

// File is the format of A2A_POLICY_FILE: for each agent, each method and
// its callers. Example: {"agents": {"archivist": {"get_document": ["orchestrator"]}}}.
// A policy file replaces the defaults entirely for the agents it names.
type File struct {
	Agents map[string]map[string][]string `json:"agents"`
}

var callerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Load reads path and returns the policy for agent, whose methods are
// offered (a method the agent does not offer is a typo and an error). An
// agent the file does not name keeps the defaults.
func Load(path, agent string, offered []string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(data, agent, offered)
}

// Parse is Load on bytes.
func Parse(data []byte, agent string, offered []string) (*Policy, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("policy: malformed policy file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("policy: malformed policy file: trailing data")
	}
	if f.Agents == nil {
		return nil, errors.New(`policy: policy file has no "agents" object`)
	}
	for name := range f.Agents {
		if !agentapi.IsAgent(name) {
			return nil, fmt.Errorf("policy: unknown agent %q in policy file", name)
		}
	}
	m, ok := f.Agents[agent]
	if !ok {
		return Default(agent)
	}
	p := &Policy{methods: map[string][]string{}}
	for method, callers := range m {
		if !slices.Contains(offered, method) {
			return nil, fmt.Errorf("policy: %s does not offer method %q", agent, method)
		}
		for _, c := range callers {
			if c != Any && !callerName.MatchString(c) {
				return nil, fmt.Errorf("policy: invalid caller %q for %s", c, method)
			}
		}
		p.methods[method] = slices.Clone(callers)
	}
	return p, nil
}

// Methods lists the methods the policy names, sorted.
func (p *Policy) Methods() []string {
	out := make([]string, 0, len(p.methods))
	for m := range p.methods {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
