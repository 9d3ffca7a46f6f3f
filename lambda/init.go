package lambda

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/agentclient"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/emf"
	"github.com/ca-a2a/ca-a2a/shared/envconfig"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

// Config is the Lambda's environment (docs/configuration.md, Lambda), parsed
// once.
type Config struct {
	Secrets       certload.SecretIDs // CERT_SECRET_ID, KEY_SECRET_ID, CA_SECRET_ID
	ExtensionPort string             // PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
	Cert          certload.Config    // MTLS_* (local runs)
	// CRL is MTLS_CRL_SECRET_ID (in AWS), MTLS_CRL_PATH or MTLS_CRL: the
	// orchestrator's and the identity provider's certificates are checked
	// against it at every handshake, as agents check each other.
	CRL certload.CRLConfig

	TokenURL        string // OIDC_TOKEN_URL
	ServerName      string // OIDC_SERVER_NAME
	ClientID        string // OIDC_CLIENT_ID
	OrchestratorURL string // ORCHESTRATOR_URL
	Concurrency     int    // FANOUT_CONCURRENCY
	VerifyServer    bool   // MTLS_VERIFY_SERVER
	EMF             bool   // METRICS_EMF: one EMF line per invocation on stdout
}

// ConfigFromEnv reads the configuration through getenv. It returns every
// problem it finds at once.
func ConfigFromEnv(getenv func(string) string) (*Config, error) {
	env := envconfig.New(getenv, "lambda")
	idp := tokensource.ProviderFromEnv(env, agentapi.Lambda)
	c := &Config{
		Secrets: certload.SecretIDs{
			Cert: env.String("CERT_SECRET_ID", "ca-a2a/lambda-cert"),
			Key:  env.String("KEY_SECRET_ID", "ca-a2a/lambda-key"),
			CA:   env.String("CA_SECRET_ID", "ca-a2a/ca-cert"),
		},
		ExtensionPort:   env.Raw("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"),
		Cert:            certload.ConfigFromEnv(env),
		CRL:             certload.CRLConfigFromEnv(env),
		TokenURL:        idp.TokenURL,
		ServerName:      idp.ServerName,
		ClientID:        idp.ClientID,
		OrchestratorURL: env.String("ORCHESTRATOR_URL", agentapi.URL(agentapi.Orchestrator)),
		Concurrency:     env.Int("FANOUT_CONCURRENCY", 8, 1, 256),
		VerifyServer:    env.Bool("MTLS_VERIFY_SERVER", true),
		EMF:             env.Bool("METRICS_EMF", true),
	}
	env.HTTPSURL("ORCHESTRATOR_URL", c.OrchestratorURL)
	if err := env.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Deps are what New builds the handler with; tests replace them.
type Deps struct {
	// SecretsManager is used when neither MTLS_* nor the extension is
	// configured; nil builds a client from the default AWS configuration.
	SecretsManager certload.BatchGetSecretValueAPI
	// HandshakeCounter, when set, counts TLS handshakes to the orchestrator.
	HandshakeCounter *atomic.Int64
	Log              *slog.Logger
	// Stdout receives the EMF lines when METRICS_EMF is on; nil means
	// os.Stdout.
	Stdout io.Writer
}

// Runtime is the initialised function: the handler, its token source and
// client, kept across warm invocations.
type Runtime struct {
	Handler *Handler
	Tokens  *tokensource.Source
	Client  *agentclient.Client
	crl     *certload.CRLWatcher // nil without a CRL
}

// Close releases the client's connections and stops the CRL watcher. A
// deployed function never calls it (the environment ends with the
// process); tests do.
func (r *Runtime) Close() {
	r.Client.Close()
	_ = r.crl.Close()
}

// New loads the certificate (MTLS_* for local runs, else the Parameters and
// Secrets extension when configured, else one BatchGetSecretValue), then
// builds the token source and the orchestrator client. Any failure is an
// init error: the function must not serve half-configured.
func New(ctx context.Context, cfg *Config, deps Deps) (*Runtime, error) {
	log := deps.Log
	if log == nil {
		log = slog.Default()
	}
	src, err := loadCertificate(ctx, cfg, deps)
	if err != nil {
		return nil, fmt.Errorf("lambda: init: %w", err)
	}
	watcher, err := loadCRL(ctx, cfg, deps, src)
	if err != nil {
		return nil, fmt.Errorf("lambda: init: revocation list (%s): %w", cfg.CRL.Variable(), err)
	}
	var crl certload.CRLSource // nil without a CRL, not a nil *CRLWatcher
	if watcher != nil {
		crl = watcher
	} else {
		log.Warn("protection switched off", "detail", "no CRL (MTLS_CRL_SECRET_ID, MTLS_CRL_PATH, MTLS_CRL): a revoked orchestrator or identity provider certificate is accepted")
	}
	tokens, err := tokensource.New(tokensource.Config{TokenURL: cfg.TokenURL, ClientID: cfg.ClientID, Certificate: src,
		ServerName: cfg.ServerName, Logger: log, CRL: crl})
	if err != nil {
		return nil, fmt.Errorf("lambda: init: %w", err)
	}
	client, err := agentclient.New(agentclient.Config{Certificate: src, Tokens: tokens, Peers: map[string]string{agentapi.Orchestrator: cfg.OrchestratorURL},
		SkipVerify: !cfg.VerifyServer, HandshakeCounter: deps.HandshakeCounter, CRL: crl})
	if err != nil {
		return nil, fmt.Errorf("lambda: init: %w", err)
	}
	leaf := src.Bundle().Leaf()
	log.Info("lambda initialised", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
		"orchestrator", cfg.OrchestratorURL, "concurrency", cfg.Concurrency)
	h := &Handler{Orchestrator: client, Concurrency: cfg.Concurrency, Log: log, TokenFetches: tokens.Fetches}
	if cfg.EMF {
		out := deps.Stdout
		if out == nil {
			out = os.Stdout // the log group's; the logs go to stderr
		}
		h.Metrics = emf.NewWriter(out)
	}
	return &Runtime{Handler: h, Tokens: tokens, Client: client, crl: watcher}, nil
}

// loadCRL starts the revocation list's watcher, when one is configured. It
// lives as long as the execution environment: between invocations Lambda
// freezes it, and its first poll after a thaw fetches the list again. The
// secret is read with GetSecretValue, through deps.SecretsManager when that
// client offers it.
func loadCRL(ctx context.Context, cfg *Config, deps Deps, src certload.Source) (*certload.CRLWatcher, error) {
	c := cfg.CRL
	if api, ok := deps.SecretsManager.(certload.GetSecretValueAPI); ok && c.SecretsManager == nil {
		c.SecretsManager = api
	}
	return certload.LoadCRL(ctx, c, src, certload.Options{Usage: certload.UsageClient, Logger: deps.Log, PollInterval: time.Minute})
}

func loadCertificate(ctx context.Context, cfg *Config, deps Deps) (certload.Source, error) {
	opts := certload.Options{Usage: certload.UsageClient, Logger: deps.Log, PollInterval: time.Minute}
	switch {
	case cfg.Cert.HasPEM() || cfg.Cert.HasPaths():
		src, _, err := certload.Load(cfg.Cert, opts) // the watcher lives as long as the environment
		return src, err
	case cfg.ExtensionPort != "":
		cert, key, ca, err := fetchFromExtension(ctx, cfg.ExtensionPort, cfg.Secrets)
		if err != nil {
			return nil, err
		}
		return certload.FromPEM(cert, key, ca, certload.Origin{Cert: "secret " + cfg.Secrets.Cert, Key: "secret " + cfg.Secrets.Key, CA: "secret " + cfg.Secrets.CA}, opts)
	default:
		api := deps.SecretsManager
		if api == nil {
			awsCfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				return nil, fmt.Errorf("AWS configuration: %w", err)
			}
			api = secretsmanager.NewFromConfig(awsCfg)
		}
		return certload.FromSecretsManager(ctx, api, cfg.Secrets, opts)
	}
}

// fetchFromExtension reads the three secrets through the AWS Parameters and
// Secrets Lambda extension on localhost (it caches them across invocations).
func fetchFromExtension(ctx context.Context, port string, ids certload.SecretIDs) (cert, key, ca []byte, err error) {
	if _, err := strconv.Atoi(port); err != nil {
		return nil, nil, nil, fmt.Errorf("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT %q is not a port", port)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(id string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet,
			"http://localhost:"+port+"/secretsmanager/get?secretId="+url.QueryEscape(id), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Aws-Parameters-Secrets-Token", os.Getenv("AWS_SESSION_TOKEN"))
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("secret %s: extension unreachable: %w", id, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", id, err)
		}
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "ResourceNotFound") {
			return nil, fmt.Errorf("%w: %s", certload.ErrSecretMissing, id)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("secret %s: extension answered HTTP %d", id, resp.StatusCode)
		}
		var v struct {
			SecretString *string `json:"SecretString"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("secret %s: malformed extension answer", id)
		}
		if v.SecretString == nil {
			return nil, fmt.Errorf("%w: %s", certload.ErrSecretBinary, id)
		}
		return []byte(*v.SecretString), nil
	}
	if cert, err = get(ids.Cert); err != nil {
		return nil, nil, nil, err
	}
	if key, err = get(ids.Key); err != nil {
		return nil, nil, nil, err
	}
	if ca, err = get(ids.CA); err != nil {
		return nil, nil, nil, err
	}
	return cert, key, ca, nil
}
