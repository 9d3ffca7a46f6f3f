package server

import (
	"net/http"
)

// AgentCard is the A2A agent card served at /.well-known/agent-card.json.
type AgentCard struct {
	Name               string                    `json:"name"`
	Description        string                    `json:"description"`
	URL                string                    `json:"url"`
	Version            string                    `json:"version"`
	ProtocolVersion    string                    `json:"protocolVersion"`
	PreferredTransport string                    `json:"preferredTransport"`
	DefaultInputModes  []string                  `json:"defaultInputModes"`
	DefaultOutputModes []string                  `json:"defaultOutputModes"`
	Skills             []cardSkill               `json:"skills"`
	SecuritySchemes    map[string]securityScheme `json:"securitySchemes"`
	Security           []map[string][]string     `json:"security"`
}

type cardSkill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	// AllowedCallers names the agent identities the policy admits.
	AllowedCallers []string `json:"allowedCallers"`
}

type securityScheme struct {
	Type        string     `json:"type"`
	Description string     `json:"description"`
	Flows       *oauthFlow `json:"flows,omitempty"`
}

type oauthFlow struct {
	ClientCredentials struct {
		TokenURL string            `json:"tokenUrl"`
		Scopes   map[string]string `json:"scopes"`
	} `json:"clientCredentials"`
}

func (s *Server) card() AgentCard {
	flow := &oauthFlow{}
	flow.ClientCredentials.TokenURL = s.opts.TokenURL
	flow.ClientCredentials.Scopes = map[string]string{}
	c := AgentCard{
		Name: s.opts.Agent.Name, Description: s.opts.Agent.Description, URL: s.opts.URL,
		Version: s.opts.Agent.Version, ProtocolVersion: "0.3.0", PreferredTransport: "JSONRPC",
		DefaultInputModes: []string{"application/json"}, DefaultOutputModes: []string{"application/json"},
		SecuritySchemes: map[string]securityScheme{
			"mtls": {Type: "mutualTLS", Description: "Client certificate issued by the ca-a2a CA; the caller identity is the agent name in its SAN."},
			"oauth2": {Type: "oauth2", Description: "Certificate-bound access token (RFC 8705, cnf.x5t#S256), client credentials with tls_client_auth.",
				Flows: flow},
		},
		Security: []map[string][]string{{"mtls": {}, "oauth2": {}}},
	}
	for _, sk := range s.skills() {
		callers := s.opts.Policy.Callers(sk.ID)
		if callers == nil {
			callers = []string{}
		}
		c.Skills = append(c.Skills, cardSkill{ID: sk.ID, Name: sk.Name, Description: sk.Description, Tags: []string{s.opts.Agent.Name}, AllowedCallers: callers})
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
