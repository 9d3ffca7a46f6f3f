package server

import (
	"net/http"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// ProtocolVersion is the A2A protocol version the agents speak.
const ProtocolVersion = "0.3.0"

// The security schemes of the agent card: both are required on every call.
const (
	SchemeMTLS   a2a.SecuritySchemeName = "mtls"
	SchemeOAuth2 a2a.SecuritySchemeName = "oauth2"
)

// AgentCard is the A2A agent card served at /.well-known/agent-card.json
// (docs/contract.md, Agent card): a2a-go's card, whose skills also name the
// callers the policy admits, and whose capabilities are all spelled out.
type AgentCard struct {
	a2a.AgentCard
	Capabilities Capabilities `json:"capabilities"`
	Skills       []CardSkill  `json:"skills"`
	// Routes are the HTTP routes besides JSON-RPC that the policy decides
	// on (GET /metrics): a ca-a2a extension of the card.
	Routes []CardRoute `json:"routes,omitempty"`
}

// CardRoute is a route besides JSON-RPC: reached with the mTLS client
// certificate alone (security "mtls"), no token.
type CardRoute struct {
	Method         string                     `json:"method"`
	Path           string                     `json:"path"`
	Description    string                     `json:"description"`
	ContentType    string                     `json:"contentType"`
	Security       []a2a.SecurityRequirements `json:"security"`
	AllowedCallers []string                   `json:"allowedCallers"`
}

// Capabilities are a2a.AgentCapabilities written even when false: a reader
// sees that streaming and push notifications are not offered.
type Capabilities struct {
	Streaming              bool `json:"streaming"`
	PushNotifications      bool `json:"pushNotifications"`
	StateTransitionHistory bool `json:"stateTransitionHistory"`
}

// CardSkill is one skill of the card: a method the agent offers.
type CardSkill struct {
	a2a.AgentSkill
	// AllowedCallers names the identities the policy admits ("*": any).
	AllowedCallers []string `json:"allowedCallers"`
}

func (s *Server) card() AgentCard {
	c := AgentCard{AgentCard: a2a.AgentCard{
		Name: s.opts.Agent.Name, Description: s.opts.Agent.Description,
		URL:     strings.TrimRight(s.opts.URL, "/") + "/message",
		Version: s.opts.Agent.Version, ProtocolVersion: ProtocolVersion, PreferredTransport: a2a.TransportProtocolJSONRPC,
		DefaultInputModes: []string{"application/json"}, DefaultOutputModes: []string{"application/json"},
		SecuritySchemes: a2a.NamedSecuritySchemes{
			SchemeMTLS: a2a.MutualTLSSecurityScheme{
				Description: "Client certificate issued by the ca-a2a CA; the caller identity is the agent name in its SAN.",
			},
			SchemeOAuth2: a2a.OAuth2SecurityScheme{
				Description: "Certificate-bound access token (RFC 8705, cnf.x5t#S256): client credentials with tls_client_auth, over the same certificate.",
				Flows: a2a.OAuthFlows{ClientCredentials: &a2a.ClientCredentialsOAuthFlow{
					TokenURL: s.opts.TokenURL, Scopes: map[string]string{},
				}},
			},
		},
		// One requirement naming both schemes: both, on every call.
		Security: []a2a.SecurityRequirements{{SchemeMTLS: a2a.SecuritySchemeScopes{}, SchemeOAuth2: a2a.SecuritySchemeScopes{}}},
	}}
	for _, sk := range s.skills() {
		callers := s.opts.Policy.Callers(sk.ID)
		if callers == nil {
			callers = []string{}
		}
		c.Skills = append(c.Skills, CardSkill{
			AgentSkill:     a2a.AgentSkill{ID: sk.ID, Name: sk.Name, Description: sk.Description, Tags: []string{s.opts.Agent.Name}},
			AllowedCallers: callers,
		})
	}
	if s.metrics != nil {
		callers := s.opts.Policy.Callers(agentapi.RouteMetrics)
		if callers == nil {
			callers = []string{}
		}
		method, path, _ := strings.Cut(agentapi.RouteMetrics, " ")
		c.Routes = append(c.Routes, CardRoute{Method: method, Path: path,
			Description: "Prometheus metrics of this agent: calls, refusals by reason, JWKS refreshes, certificate expiry.",
			ContentType: "text/plain; version=0.0.4", Security: []a2a.SecurityRequirements{{SchemeMTLS: a2a.SecuritySchemeScopes{}}},
			AllowedCallers: callers})
	}
	return c
}

func (s *Server) serveCard(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.card())
}
