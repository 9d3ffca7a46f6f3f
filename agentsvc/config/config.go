// Package config parses the agent's environment (DESIGN section 4) once,
// into a typed, validated Config. Unsafe combinations are errors; protections
// switched off are reported as warnings for the caller to log.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// Defaults that are not derived from other settings (the identity
// provider's are agentapi.DefaultIssuer and agentapi.DefaultAudience).
const (
	DefaultDocuments = "file://./data/documents"
	DefaultArchive   = "sqlite://./data/archive.db"
)

// Config is everything an agent is configured with.
type Config struct {
	Name string // AGENT_NAME
	Addr string // AGENT_ADDR

	MTLSEnabled       bool            // MTLS_ENABLED
	RequireClientCert bool            // MTLS_REQUIRE_CLIENT_CERT
	VerifyServer      bool            // MTLS_VERIFY_SERVER
	Cert              certload.Config // MTLS_CERT*, MTLS_KEY*, MTLS_CA_CERT*

	BindingEnabled  bool // TOKEN_BINDING_ENABLED
	BindingRequired bool // TOKEN_BINDING_REQUIRED

	Issuer     string // OIDC_ISSUER
	ServerName string // OIDC_SERVER_NAME
	Audience   string // OIDC_AUDIENCE
	JWKSURL    string // OIDC_JWKS_URL
	TokenURL   string // OIDC_TOKEN_URL
	ClientID   string // OIDC_CLIENT_ID

	// PeerURLs maps agent names to their URLs (EXTRACTOR_URL, ...).
	PeerURLs map[string]string

	DocumentsURL string // DOCUMENTS_URL
	ArchiveDSN   string // ARCHIVE_DSN
	PolicyFile   string // A2A_POLICY_FILE
	LogLevel     slog.Level
}

// Load reads the configuration through getenv (os.Getenv). It returns every
// problem it finds at once.
func Load(getenv func(string) string) (*Config, error) {
	p := parser{getenv: getenv}
	c := &Config{
		Name:              getenv("AGENT_NAME"),
		MTLSEnabled:       p.bool("MTLS_ENABLED", true),
		RequireClientCert: p.bool("MTLS_REQUIRE_CLIENT_CERT", true),
		VerifyServer:      p.bool("MTLS_VERIFY_SERVER", true),
		Cert:              certload.ConfigFromEnv(getenv),
		BindingEnabled:    p.bool("TOKEN_BINDING_ENABLED", true),
		BindingRequired:   p.bool("TOKEN_BINDING_REQUIRED", true),
		Issuer:            p.str("OIDC_ISSUER", agentapi.DefaultIssuer),
		Audience:          p.str("OIDC_AUDIENCE", agentapi.DefaultAudience),
		DocumentsURL:      p.str("DOCUMENTS_URL", DefaultDocuments),
		ArchiveDSN:        p.str("ARCHIVE_DSN", DefaultArchive),
		PolicyFile:        getenv("A2A_POLICY_FILE"),
		PeerURLs:          map[string]string{},
	}
	port, known := agentapi.Port(c.Name)
	switch {
	case c.Name == "":
		p.fail("AGENT_NAME is required (orchestrator, extractor, validator or archivist)")
	case !known:
		p.fail(fmt.Sprintf("AGENT_NAME %q is not an agent (orchestrator, extractor, validator or archivist)", c.Name))
	}
	c.Addr = p.str("AGENT_ADDR", fmt.Sprintf(":%d", port))
	c.ClientID = p.str("OIDC_CLIENT_ID", c.Name)
	issuer := strings.TrimRight(c.Issuer, "/")
	c.JWKSURL = p.str("OIDC_JWKS_URL", agentapi.JWKSEndpoint(issuer))
	c.TokenURL = p.str("OIDC_TOKEN_URL", agentapi.TokenEndpoint(issuer))
	for _, name := range agentapi.AgentNames() {
		c.PeerURLs[name] = p.str(strings.ToUpper(name)+"_URL", agentapi.URL(name))
	}
	if u, err := url.Parse(c.Issuer); err != nil || u.Scheme != "https" || u.Host == "" {
		p.fail(fmt.Sprintf("OIDC_ISSUER must be an https URL, got %q", c.Issuer))
	} else {
		c.ServerName = p.str("OIDC_SERVER_NAME", u.Hostname())
	}
	for _, v := range []struct{ name, url string }{{"OIDC_JWKS_URL", c.JWKSURL}, {"OIDC_TOKEN_URL", c.TokenURL}} {
		if u, err := url.Parse(v.url); err != nil || u.Scheme != "https" || u.Host == "" {
			p.fail(fmt.Sprintf("%s must be an https URL (the identity provider is verified against the CA), got %q", v.name, v.url))
		}
	}
	for name, raw := range c.PeerURLs {
		if u, err := url.Parse(raw); err != nil || u.Scheme != "https" || u.Host == "" {
			p.fail(fmt.Sprintf("%s_URL must be an https URL, got %q", strings.ToUpper(name), raw))
		}
	}
	if c.Audience == "" {
		p.fail("OIDC_AUDIENCE must not be empty")
	}
	if !strings.HasPrefix(c.DocumentsURL, "file://") && !strings.HasPrefix(c.DocumentsURL, "s3://") {
		p.fail(fmt.Sprintf("DOCUMENTS_URL must be file://DIR or s3://BUCKET[/PREFIX], got %q", c.DocumentsURL))
	}
	if !strings.HasPrefix(c.ArchiveDSN, "sqlite://") {
		p.fail(fmt.Sprintf("ARCHIVE_DSN must be sqlite://PATH, got %q", c.ArchiveDSN))
	}
	if err := c.LogLevel.UnmarshalText([]byte(p.str("LOG_LEVEL", "info"))); err != nil {
		p.fail(fmt.Sprintf("LOG_LEVEL %q is not debug, info, warn or error", getenv("LOG_LEVEL")))
	}

	// Unsafe combinations.
	if c.BindingRequired && (!c.MTLSEnabled || !c.RequireClientCert) {
		p.fail("TOKEN_BINDING_REQUIRED=true needs client certificates: set MTLS_ENABLED=true and MTLS_REQUIRE_CLIENT_CERT=true, or turn binding off")
	}
	if c.BindingEnabled && !c.MTLSEnabled {
		p.fail("TOKEN_BINDING_ENABLED=true needs MTLS_ENABLED=true")
	}
	if !c.Cert.HasPEM() && !c.Cert.HasPaths() {
		p.fail("no certificate: set MTLS_CERT, MTLS_KEY and MTLS_CA_CERT, or MTLS_CERT_PATH, MTLS_KEY_PATH and MTLS_CA_CERT_PATH")
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return c, nil
}

// Warnings lists the protections that are switched off.
func (c *Config) Warnings() []string {
	var w []string
	if !c.MTLSEnabled {
		w = append(w, "MTLS_ENABLED=false: serving without TLS; no caller can be identified, so every method but health is refused")
	}
	if c.MTLSEnabled && !c.RequireClientCert {
		w = append(w, "MTLS_REQUIRE_CLIENT_CERT=false: clients may connect without a certificate")
	}
	if !c.VerifyServer {
		w = append(w, "MTLS_VERIFY_SERVER=false: outgoing calls do not verify the peer; any server can impersonate an agent")
	}
	if !c.BindingEnabled {
		w = append(w, "TOKEN_BINDING_ENABLED=false: a stolen token is accepted from any client certificate")
	}
	if !c.BindingRequired {
		w = append(w, "TOKEN_BINDING_REQUIRED=false: tokens without cnf are accepted")
	}
	return w
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) bool(name string, def bool) bool {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(fmt.Sprintf("%s must be true or false, got %q", name, v))
		return def
	}
	return b
}

func (p *parser) fail(msg string) { p.errs = append(p.errs, errors.New("config: "+msg)) }
