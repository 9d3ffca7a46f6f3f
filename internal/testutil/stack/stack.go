// Package stack runs the whole system on loopback for end-to-end tests:
// certgen certificates (with a CRL), the real local identity provider, and
// the four agents in-process through agentsvc.Run, each on its own
// 127.0.0.1 port. Agents trust the CA bundle and apply the CRL file, both
// re-read every PollInterval, as local runs do (or the CRL secret, as in
// AWS: CRLFromSecretsManager).
//
// The extractor parses in sandbox workers that are the test binary
// re-executed: a test package using Start must call sandbox.Main first in
// its TestMain, or the extractor refuses to start.
package stack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/agentsvc"
	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/config"
	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/testutil/idp"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// Agents in start order: the orchestrator's peers first.
var Agents = append(agentapi.Peers(), agentapi.Orchestrator)

// PollInterval is how often the agents and the identity provider look at
// their certificate, CA bundle and CRL files: short, so that tests see a
// rotation or a revocation quickly.
const PollInterval = 100 * time.Millisecond

// Stack is a running system.
type Stack struct {
	CertsDir string
	DocsDir  string
	IdP      *idp.IdP
	// URLs maps each agent to https://127.0.0.1:PORT.
	URLs map[string]string
	// Env is the environment each agent was started with.
	Env map[string]map[string]string

	mu     sync.Mutex
	cancel map[string]context.CancelFunc
	done   map[string]chan error
	logs   map[string]*syncbuf.Buffer
	t      testing.TB
}

// Option changes an agent's environment before it starts; s holds the
// certificates by then.
type Option func(s *Stack, agent string, env map[string]string)

// ArchiveDSN puts the archivist on dsn (ARCHIVE_DSN), with password in
// ARCHIVE_DB_PASSWORD when not empty.
func ArchiveDSN(dsn, password string) Option {
	return func(_ *Stack, agent string, env map[string]string) {
		if agent != agentapi.Archivist {
			return
		}
		env["ARCHIVE_DSN"] = dsn
		if password != "" {
			env["ARCHIVE_DB_PASSWORD"] = password
		}
	}
}

// CRLSecretID is the secret the agents read their CRL from under
// CRLFromSecretsManager: the name certgen publish writes with the prefix
// ca-a2a/, as in AWS.
const CRLSecretID = "ca-a2a/crl"

// CRLFromSecretsManager runs the agents as in AWS: their CRL comes from the
// secret CRLSecretID (MTLS_CRL_SECRET_ID, fetched again every
// PollInterval) instead of the file. Before the first agent starts, the
// certificates are published with certgen publish through the default AWS
// configuration, which the test must have pointed at moto_server
// (moto.Env). Publish again after certgen revoke to revoke.
func CRLFromSecretsManager() Option {
	var once sync.Once
	return func(s *Stack, _ string, env map[string]string) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
			if err != nil {
				s.t.Fatal(err)
			}
			if err := certgen.Publish(ctx, secretsmanager.NewFromConfig(awsCfg), s.CertsDir, "ca-a2a/", nil, s.t.Logf); err != nil {
				s.t.Fatal(err)
			}
		})
		delete(env, "MTLS_CRL_PATH")
		env["MTLS_CRL_SECRET_ID"] = CRLSecretID
	}
}

// Start brings the system up and tears it down when the test ends.
func Start(t testing.TB, opts ...Option) *Stack {
	t.Helper()
	base := t.TempDir()
	s := &Stack{
		CertsDir: filepath.Join(base, "certs"), DocsDir: filepath.Join(base, "documents"),
		URLs: map[string]string{}, Env: map[string]map[string]string{},
		cancel: map[string]context.CancelFunc{}, done: map[string]chan error{}, logs: map[string]*syncbuf.Buffer{}, t: t,
	}
	if err := certgen.Generate(certgen.Options{Dir: s.CertsDir}); err != nil {
		t.Fatal(err)
	}
	if err := certgen.RefreshCRL(certgen.CRLOptions{Dir: s.CertsDir}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.DocsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s.IdP = idp.Start(t, s.CertsDir, idp.ReloadInterval(PollInterval))
	ports := map[string]int{}
	for _, a := range Agents {
		ports[a] = loopback.Port(t)
		s.URLs[a] = fmt.Sprintf("https://127.0.0.1:%d", ports[a])
	}
	for _, a := range Agents {
		cert, key := certgen.LeafPaths(s.CertsDir, a)
		env := map[string]string{
			"AGENT_NAME": a, "AGENT_ADDR": fmt.Sprintf("127.0.0.1:%d", ports[a]),
			"MTLS_CERT_PATH": cert, "MTLS_KEY_PATH": key, "MTLS_CA_CERT_PATH": certgen.BundlePath(s.CertsDir),
			"MTLS_CRL_PATH": certgen.CRLPath(s.CertsDir),
			"OIDC_ISSUER":   s.IdP.Issuer, "OIDC_JWKS_URL": s.IdP.JWKSURL, "OIDC_TOKEN_URL": s.IdP.TokenURL,
			"OIDC_SERVER_NAME": idp.ServerName,
			"EXTRACTOR_URL":    s.URLs["extractor"], "VALIDATOR_URL": s.URLs["validator"],
			"ARCHIVIST_URL": s.URLs["archivist"], "ORCHESTRATOR_URL": s.URLs["orchestrator"],
			"DOCUMENTS_URL": "file://" + s.DocsDir,
			"ARCHIVE_DSN":   "sqlite://" + filepath.Join(base, "archive", "archive.db"),
			"LOG_LEVEL":     "debug",
			// Agents run in the test process: their EMF lines would land
			// on the test's stdout (cmd/agent's tests check the lines).
			"METRICS_EMF": "false",
		}
		for _, o := range opts {
			o(s, a, env)
		}
		s.Env[a] = env
		s.StartAgent(a)
	}
	t.Cleanup(func() {
		for _, a := range Agents {
			s.StopAgent(a)
		}
		if t.Failed() {
			for _, a := range Agents {
				t.Logf("--- %s log:\n%s", a, s.logs[a].String())
			}
		}
	})
	return s
}

// startBound bounds an agent's start (its certificate, CRL and first JWKS
// fetch): only a hang should reach it, also on a CI machine whose cores
// other test binaries keep busy.
const startBound = 60 * time.Second

// StartAgent starts (or restarts) agent with its recorded environment and
// waits until it listens.
func (s *Stack) StartAgent(agent string) {
	s.t.Helper()
	env := s.Env[agent]
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		s.t.Fatalf("%s config: %v", agent, err)
	}
	cfg.PollInterval = PollInterval
	if cfg.CRL.SecretID != "" {
		cfg.CRL.Refresh = PollInterval // below what MTLS_CRL_REFRESH allows
	}
	buf := &syncbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- agentsvc.Run(ctx, cfg, log, func(string) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		s.t.Fatalf("%s did not start: %v\n%s", agent, err, buf.String())
	case <-time.After(startBound):
		cancel()
		s.t.Fatalf("%s did not start within %s\n%s", agent, startBound, buf.String())
	}
	s.mu.Lock()
	s.cancel[agent], s.done[agent], s.logs[agent] = cancel, done, buf
	s.mu.Unlock()
}

// StopAgent stops agent gracefully (SIGTERM-like) and waits for it.
func (s *Stack) StopAgent(agent string) {
	s.mu.Lock()
	cancel, done := s.cancel[agent], s.done[agent]
	delete(s.cancel, agent)
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.t.Errorf("%s did not stop within 30s", agent)
	}
}

// Log returns what agent logged so far.
func (s *Stack) Log(agent string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs[agent].String()
}

// PutDocument writes a document into the store the agents read.
func (s *Stack) PutDocument(t testing.TB, key string, data []byte) {
	t.Helper()
	p := filepath.Join(s.DocsDir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Leaf returns the certificate and key paths of agent, and the path of
// the CA bundle.
func (s *Stack) Leaf(agent string) (cert, key, ca string) {
	cert, key = certgen.LeafPaths(s.CertsDir, agent)
	return cert, key, certgen.BundlePath(s.CertsDir)
}
