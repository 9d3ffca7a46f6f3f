// Package config parses the agent's environment (docs/configuration.md) once,
// into a typed, validated Config. Unsafe combinations are errors; protections
// switched off are reported as warnings for the caller to log.
package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/envconfig"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
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

	MTLSEnabled       bool               // MTLS_ENABLED
	RequireClientCert bool               // MTLS_REQUIRE_CLIENT_CERT
	VerifyServer      bool               // MTLS_VERIFY_SERVER
	Cert              certload.Config    // MTLS_CERT*, MTLS_KEY*, MTLS_CA_CERT*
	CRL               certload.CRLConfig // MTLS_CRL_PATH, MTLS_CRL, MTLS_CRL_SECRET_ID, MTLS_CRL_REFRESH

	BindingEnabled  bool // TOKEN_BINDING_ENABLED
	BindingRequired bool // TOKEN_BINDING_REQUIRED

	Issuer     string // OIDC_ISSUER
	ServerName string // OIDC_SERVER_NAME
	Audience   string // OIDC_AUDIENCE
	JWKSURL    string // OIDC_JWKS_URL
	// JWKSRefresh is how often the signing keys are refreshed in the
	// background (JWKS_REFRESH_INTERVAL): how long a key the identity
	// provider withdrew keeps verifying tokens at most.
	JWKSRefresh time.Duration
	TokenURL    string // OIDC_TOKEN_URL
	ClientID    string // OIDC_CLIENT_ID

	// PeerURLs maps agent names to their URLs (EXTRACTOR_URL, ...).
	PeerURLs map[string]string

	DocumentsURL string // DOCUMENTS_URL
	PolicyFile   string // A2A_POLICY_FILE
	LogLevel     slog.Level
	// Archive is ARCHIVE_DSN, ARCHIVE_DB_PASSWORD and ARCHIVE_DB_CA_PATH;
	// it prints and logs redacted.
	Archive archive.Config

	// EMF writes CloudWatch Embedded Metric Format lines to stdout
	// (METRICS_EMF, default true; docs/operations.md, Metrics and dashboards).
	EMF bool

	// PollInterval is how often the certificate and CRL files are checked
	// for changes (0: certload.DefaultPollInterval). Not an environment
	// variable: tests shorten it (and CRL.Refresh, below MinCRLRefresh).
	PollInterval time.Duration

	// Extract are the extractor's limits (EXTRACT_*); read by every agent,
	// used by the extractor only.
	Extract Extract
}

// Extract are the limits of the extractor's sandboxed parses
// (docs/configuration.md, Extractor).
type Extract struct {
	// Workers is the number of parses running at once (EXTRACT_WORKERS).
	Workers int
	// Timeout is the wall-clock limit of one parse (EXTRACT_TIMEOUT).
	Timeout time.Duration
	// MemoryLimit is the address space one parse may add to what its
	// worker process holds when it starts (EXTRACT_MEMORY_LIMIT).
	MemoryLimit int64
	// MaxBytes bounds a document read (EXTRACT_MAX_BYTES).
	MaxBytes int64
}

// JWKS_REFRESH_INTERVAL bounds: at least the unknown-kid refresh limit's
// order of magnitude (the identity provider is asked by every agent), at
// most a day.
const (
	MinJWKSRefresh = 30 * time.Second
	MaxJWKSRefresh = 24 * time.Hour
)

// Defaults and bounds of the EXTRACT_* settings.
const (
	DefaultExtractWorkers     = sandbox.DefaultWorkers
	DefaultExtractTimeout     = sandbox.DefaultTimeout
	DefaultExtractMemoryLimit = sandbox.DefaultMemoryLimit
	DefaultExtractMaxBytes    = sandbox.DefaultMaxDocumentBytes
	maxExtractWorkers         = 64
	// A parse must end well inside the 100 s a call may take, or every
	// slow document would end by the request deadline (a transient
	// failure, retried) instead of by the limit (a permanent one).
	maxExtractTimeout     = 90 * time.Second
	maxExtractMemoryLimit = 64 << 30
	maxExtractMaxBytes    = 1 << 30
)

// Load reads the configuration through getenv (os.Getenv). It returns every
// problem it finds at once.
func Load(getenv func(string) string) (*Config, error) {
	env := envconfig.New(getenv, "config")
	c := &Config{
		Name:              env.Raw("AGENT_NAME"),
		MTLSEnabled:       env.Bool("MTLS_ENABLED", true),
		RequireClientCert: env.Bool("MTLS_REQUIRE_CLIENT_CERT", true),
		VerifyServer:      env.Bool("MTLS_VERIFY_SERVER", true),
		Cert:              certload.ConfigFromEnv(env),
		CRL:               certload.CRLConfigFromEnv(env),
		BindingEnabled:    env.Bool("TOKEN_BINDING_ENABLED", true),
		BindingRequired:   env.Bool("TOKEN_BINDING_REQUIRED", true),
		Audience:          env.String("OIDC_AUDIENCE", agentapi.DefaultAudience),
		DocumentsURL:      env.String("DOCUMENTS_URL", DefaultDocuments),
		PolicyFile:        env.Raw("A2A_POLICY_FILE"),
		EMF:               env.Bool("METRICS_EMF", true),
		PeerURLs:          map[string]string{},
	}
	c.Archive = archive.Config{
		DSN:      env.String("ARCHIVE_DSN", DefaultArchive),
		Password: env.Raw("ARCHIVE_DB_PASSWORD"), // exact: a password may hold any character
		CAPath:   env.String("ARCHIVE_DB_CA_PATH", ""),
	}
	port, known := agentapi.Port(c.Name)
	switch {
	case c.Name == "":
		env.Failf("AGENT_NAME is required (orchestrator, extractor, validator or archivist)")
	case !known:
		env.Failf("AGENT_NAME %q is not an agent (orchestrator, extractor, validator or archivist)", c.Name)
	}
	c.Addr = env.String("AGENT_ADDR", fmt.Sprintf(":%d", port))
	idp := tokensource.ProviderFromEnv(env, c.Name)
	c.Issuer, c.ServerName, c.TokenURL, c.ClientID = idp.Issuer, idp.ServerName, idp.TokenURL, idp.ClientID
	c.JWKSURL = env.String("OIDC_JWKS_URL", agentapi.JWKSEndpoint(idp.IssuerBase()))
	env.HTTPSURL("OIDC_JWKS_URL", c.JWKSURL, "the identity provider is verified against the CA")
	c.JWKSRefresh = env.Duration("JWKS_REFRESH_INTERVAL", binding.DefaultRefreshInterval, MinJWKSRefresh, MaxJWKSRefresh)
	for _, name := range agentapi.AgentNames() {
		v := strings.ToUpper(name) + "_URL"
		c.PeerURLs[name] = env.String(v, agentapi.URL(name))
		env.HTTPSURL(v, c.PeerURLs[name])
	}
	if c.Audience == "" {
		env.Failf("OIDC_AUDIENCE must not be empty")
	}
	if !strings.HasPrefix(c.DocumentsURL, "file://") && !strings.HasPrefix(c.DocumentsURL, "s3://") {
		env.Failf("DOCUMENTS_URL must be file://DIR or s3://BUCKET[/PREFIX], got %q", c.DocumentsURL)
	}
	// The message names the variable and never echoes a password.
	if err := c.Archive.Validate(); err != nil {
		env.Failf("%s", strings.TrimPrefix(err.Error(), "archivist: "))
	}
	c.Extract = Extract{
		Workers:     env.Int("EXTRACT_WORKERS", DefaultExtractWorkers, 1, maxExtractWorkers),
		Timeout:     env.Duration("EXTRACT_TIMEOUT", DefaultExtractTimeout, time.Second, maxExtractTimeout),
		MemoryLimit: env.Bytes("EXTRACT_MEMORY_LIMIT", DefaultExtractMemoryLimit, sandbox.MinMemoryLimit, maxExtractMemoryLimit),
		MaxBytes:    env.Bytes("EXTRACT_MAX_BYTES", DefaultExtractMaxBytes, 1, maxExtractMaxBytes),
	}
	// A worker holds the document and its result inside its memory limit.
	if held := c.Extract.MaxBytes + agentapi.MaxExtractedDataBytes; held >= c.Extract.MemoryLimit {
		env.Failf("EXTRACT_MEMORY_LIMIT (%s) must exceed EXTRACT_MAX_BYTES (%s) plus the %s result a worker holds with it",
			envconfig.FormatBytes(c.Extract.MemoryLimit), envconfig.FormatBytes(c.Extract.MaxBytes), envconfig.FormatBytes(agentapi.MaxExtractedDataBytes))
	}
	if err := c.LogLevel.UnmarshalText([]byte(env.String("LOG_LEVEL", "info"))); err != nil {
		env.Failf("LOG_LEVEL %q is not debug, info, warn or error", env.Raw("LOG_LEVEL"))
	}

	// Unsafe combinations.
	if c.BindingRequired && (!c.MTLSEnabled || !c.RequireClientCert) {
		env.Failf("TOKEN_BINDING_REQUIRED=true needs client certificates: set MTLS_ENABLED=true and MTLS_REQUIRE_CLIENT_CERT=true, or turn binding off")
	}
	if c.BindingEnabled && !c.MTLSEnabled {
		env.Failf("TOKEN_BINDING_ENABLED=true needs MTLS_ENABLED=true")
	}
	if !c.Cert.HasPEM() && !c.Cert.HasPaths() {
		env.Failf("no certificate: set MTLS_CERT, MTLS_KEY and MTLS_CA_CERT, or MTLS_CERT_PATH, MTLS_KEY_PATH and MTLS_CA_CERT_PATH")
	}
	if err := env.Err(); err != nil {
		return nil, err
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
	if c.MTLSEnabled && !c.CRL.Configured() {
		w = append(w, "no MTLS_CRL_PATH, MTLS_CRL or MTLS_CRL_SECRET_ID: revoked certificates are accepted until they expire")
	}
	if !c.BindingRequired {
		w = append(w, "TOKEN_BINDING_REQUIRED=false: tokens without cnf are accepted")
	}
	return w
}
