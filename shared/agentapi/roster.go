package agentapi

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// Domain is the DNS suffix of every identity: the agent called "extractor"
// presents a certificate whose only SAN is extractor.ca-a2a.local.
const Domain = "ca-a2a.local"

// The agents.
const (
	Orchestrator = "orchestrator"
	Extractor    = "extractor"
	Validator    = "validator"
	Archivist    = "archivist"
)

// The other principals that hold a certificate of the project CA.
const (
	// Lambda only calls (the orchestrator); it serves nothing.
	Lambda = "lambda"
	// Keycloak is the identity provider; agents and the Lambda verify its
	// certificate when they fetch keys and tokens.
	Keycloak = "keycloak"
)

// Principal is one identity of the roster and the port it serves on by
// default (0 for the Lambda, which serves nothing).
type Principal struct {
	Name string
	Port int
}

// agents are the four agents in port order; principals adds the others.
var (
	agents     = []Principal{{Orchestrator, 8001}, {Extractor, 8002}, {Validator, 8003}, {Archivist, 8004}}
	principals = append(slices.Clone(agents), Principal{Lambda, 0}, Principal{Keycloak, 8443})
)

// Agents returns the four agents with their default ports, in port order.
func Agents() []Principal { return slices.Clone(agents) }

// AgentNames returns the names of the four agents, in port order.
func AgentNames() []string { return names(agents) }

// Principals returns the name of every identity the project CA issues a
// certificate to by default: the agents, the Lambda and the identity
// provider (certgen's default set).
func Principals() []string { return names(principals) }

// Peers returns the agents the orchestrator calls, in pipeline order.
func Peers() []string { return []string{Extractor, Validator, Archivist} }

// IsAgent reports whether name is one of the four agents.
func IsAgent(name string) bool {
	_, ok := Port(name)
	return ok
}

// Port returns the default port of agent name.
func Port(name string) (int, bool) {
	for _, a := range agents {
		if a.Name == name {
			return a.Port, true
		}
	}
	return 0, false
}

// DNSName returns the SAN the principal called name presents.
func DNSName(name string) string { return name + "." + Domain }

// URL returns the default base URL of agent name,
// https://<name>.ca-a2a.local:<port>, or "" for a name that is not an agent.
func URL(name string) string {
	port, ok := Port(name)
	if !ok {
		return ""
	}
	return "https://" + DNSName(name) + ":" + strconv.Itoa(port)
}

func names(ps []Principal) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// ErrNoIdentity: the certificate carries no ca-a2a identity.
var ErrNoIdentity = errors.New("agentapi: certificate carries no ca-a2a identity")

// Identity returns the principal name of cert: the single label before
// ".ca-a2a.local" in its DNS SANs. A certificate with no such SAN, or with
// several different ones, has no identity: one certificate, one caller.
// Wildcards and deeper names (a.b.ca-a2a.local) never count.
func Identity(cert *x509.Certificate) (string, error) {
	name := ""
	for _, dns := range cert.DNSNames {
		label, ok := strings.CutSuffix(strings.ToLower(dns), "."+Domain)
		if !ok || label == "" || strings.ContainsAny(label, ".*") {
			continue
		}
		if name != "" && name != label {
			return "", fmt.Errorf("%w: several agent names", ErrNoIdentity)
		}
		name = label
	}
	if name == "" {
		return "", ErrNoIdentity
	}
	return name, nil
}

// AuthorizeAgent accepts only a peer whose identity is one of names. A
// client gives it to certload.ClientConfig to verify the agent it dials by
// name, whatever address it dials.
func AuthorizeAgent(names ...string) certload.Authorizer {
	return func(leaf *x509.Certificate) error {
		id, err := Identity(leaf)
		if err != nil {
			return fmt.Errorf("%w: %w", certload.ErrUnauthorizedPeer, err)
		}
		if slices.Contains(names, id) {
			return nil
		}
		return fmt.Errorf("%w: %q", certload.ErrUnauthorizedPeer, id)
	}
}

// AuthorizeAny accepts every peer whose certificate the CA issued. Agents
// serve with it: which caller may call which method is the policy's
// decision, made per request on the caller's identity.
func AuthorizeAny() certload.Authorizer { return func(*x509.Certificate) error { return nil } }
