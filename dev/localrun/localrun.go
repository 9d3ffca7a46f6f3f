// Package localrun starts the local stand-ins of the cloud parts on
// loopback (docs/configuration.md, Local runs): moto_server for Secrets Manager, the local
// identity provider, the four agents, and the Lambda bootstrap under the
// Runtime Interface Emulator. Every process it starts runs in its own
// process group and is stopped by Group.Stop, also on interrupt.
package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/procgroup"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/envconfig"
)

// RIEVersion pins the Lambda Runtime Interface Emulator installed through Go.
const RIEVersion = "v0.0.0-20261030222936-bef5c4ba774d"

// Agents are the agents with their local ports (the roster's defaults), in
// start order: the orchestrator's peers before the orchestrator.
var Agents = startOrder()

func startOrder() []agentapi.Principal {
	var out []agentapi.Principal
	for _, name := range append(agentapi.Peers(), agentapi.Orchestrator) {
		port, _ := agentapi.Port(name)
		out = append(out, agentapi.Principal{Name: name, Port: port})
	}
	return out
}

// Layout is where local state lives.
type Layout struct {
	CertsDir string // CERTS_DIR, ./certs
	StateDir string // ./.local
	IdPPort  int    // IDP_PORT, 8443
	MotoPort int    // MOTO_PORT, 5000
	// Archive is the archivist's engine (ARCHIVE): ArchiveSQLite, a file
	// under StateDir, or ArchivePostgres, a throwaway cluster that
	// StartArchiveDB starts.
	Archive string
	// ArchiveEnv is the archivist's ARCHIVE_* environment once
	// StartArchiveDB ran; empty for SQLite.
	ArchiveEnv []string
}

// The engines ARCHIVE selects.
const (
	ArchiveSQLite   = "sqlite"
	ArchivePostgres = "postgres"
)

// FromEnv reads CERTS_DIR, IDP_PORT, MOTO_PORT and ARCHIVE.
func FromEnv() (Layout, error) {
	env := envconfig.New(os.Getenv, "")
	l := Layout{
		CertsDir: env.String("CERTS_DIR", "./certs"),
		StateDir: "./.local",
		IdPPort:  env.Int("IDP_PORT", 8443, 1, 65535), // the port of agentapi.DefaultIssuer
		MotoPort: env.Int("MOTO_PORT", 5000, 1, 65535),
		Archive:  env.String("ARCHIVE", ArchiveSQLite),
	}
	if l.Archive != ArchiveSQLite && l.Archive != ArchivePostgres {
		env.Failf("ARCHIVE must be sqlite or postgres, got %q", l.Archive)
	}
	return l, env.Err()
}

// Paths under the state directory.
func (l Layout) Bin(name string) string { return filepath.Join(l.StateDir, "bin", name) }
func (l Layout) Log(name string) string { return filepath.Join(l.StateDir, "logs", name+".log") }
func (l Layout) Documents() string      { return filepath.Join(l.StateDir, "documents") }

// Issuer is the local issuer; clients dial 127.0.0.1 and verify the name.
func (l Layout) Issuer() string {
	return fmt.Sprintf("https://%s:%d%s", agentapi.DNSName(agentapi.Keycloak), l.IdPPort, agentapi.RealmPath)
}

// dialedIssuer is the issuer's URL with 127.0.0.1 for its host.
func (l Layout) dialedIssuer() string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", l.IdPPort, agentapi.RealmPath)
}

// TokenURL dials the local identity provider.
func (l Layout) TokenURL() string { return agentapi.TokenEndpoint(l.dialedIssuer()) }

// JWKSURL dials the local identity provider.
func (l Layout) JWKSURL() string { return agentapi.JWKSEndpoint(l.dialedIssuer()) }

// MotoEndpoint is moto_server's URL.
func (l Layout) MotoEndpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", l.MotoPort) }

// AgentURL is https://127.0.0.1:PORT of agent.
func AgentURL(agent string) string {
	for _, a := range Agents {
		if a.Name == agent {
			return fmt.Sprintf("https://127.0.0.1:%d", a.Port)
		}
	}
	return ""
}

// AWSEnv points the AWS SDK at moto_server with dummy credentials.
func (l Layout) AWSEnv() []string {
	return []string{"AWS_ENDPOINT_URL=" + l.MotoEndpoint(), "AWS_REGION=eu-west-3", "AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_EC2_METADATA_DISABLED=true"}
}

// AgentEnv is the environment of a local agent.
func (l Layout) AgentEnv(agent string, port int) []string {
	cert, key := certgen.LeafPaths(l.CertsDir, agent)
	env := []string{
		"AGENT_NAME=" + agent, fmt.Sprintf("AGENT_ADDR=127.0.0.1:%d", port),
		// The bundle and the CRL, re-read when they change: a CA rotation
		// or a revocation needs no restart (docs/operations.md).
		"MTLS_CERT_PATH=" + cert, "MTLS_KEY_PATH=" + key, "MTLS_CA_CERT_PATH=" + certgen.BundlePath(l.CertsDir),
		"MTLS_CRL_PATH=" + certgen.CRLPath(l.CertsDir),
		"OIDC_ISSUER=" + l.Issuer(), "OIDC_JWKS_URL=" + l.JWKSURL(), "OIDC_TOKEN_URL=" + l.TokenURL(),
		"DOCUMENTS_URL=file://" + l.Documents(),
		"LOG_LEVEL=info",
	}
	if agent == agentapi.Archivist && len(l.ArchiveEnv) > 0 {
		env = append(env, l.ArchiveEnv...)
	} else {
		env = append(env, "ARCHIVE_DSN=sqlite://"+filepath.Join(l.StateDir, "archive", "archive.db"))
	}
	for _, a := range Agents {
		env = append(env, fmt.Sprintf("%s_URL=%s", upper(a.Name), AgentURL(a.Name)))
	}
	return env
}

// LambdaEnv is the environment of the local Lambda: secrets (the CRL
// among them, as in AWS) from moto, token from the local identity
// provider, calls to the local orchestrator.
func (l Layout) LambdaEnv() []string {
	return append(l.AWSEnv(),
		"OIDC_ISSUER="+l.Issuer(), "OIDC_TOKEN_URL="+l.TokenURL(),
		"ORCHESTRATOR_URL="+AgentURL(agentapi.Orchestrator), "FANOUT_CONCURRENCY=8",
		"CERT_SECRET_ID=ca-a2a/lambda-cert", "KEY_SECRET_ID=ca-a2a/lambda-key", "CA_SECRET_ID=ca-a2a/ca-cert",
		"MTLS_CRL_SECRET_ID=ca-a2a/crl")
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// Group is a set of started processes (and other things to stop, OnStop).
type Group struct {
	mu    sync.Mutex
	stops []func()
}

// OnStop adds f to what Stop runs, in the same newest-first order as the
// processes.
func (g *Group) OnStop(f func()) {
	g.mu.Lock()
	g.stops = append(g.stops, f)
	g.mu.Unlock()
}

// Start runs bin with args and env (added to this process's environment),
// its output appended to logPath, in its own process group.
func (g *Group) Start(name, logPath string, env []string, bin string, args ...string) error {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := procgroup.Start(cmd)
	// The child has its own descriptor of the log.
	logf.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	g.OnStop(func() { p.Stop(syscall.SIGTERM, 10*time.Second) })
	return nil
}

// Stop ends every process, newest first: SIGTERM, then SIGKILL after 10s.
func (g *Group) Stop() {
	g.mu.Lock()
	stops := g.stops
	g.stops = nil
	g.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

// PortFree reports whether nothing listens on 127.0.0.1:port.
func PortFree(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 300*time.Millisecond)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// CheckPorts fails when the identity provider's or an agent's port is taken.
func (l Layout) CheckPorts() error {
	if !PortFree(l.IdPPort) {
		return fmt.Errorf("identity provider port 127.0.0.1:%d: %w", l.IdPPort, ErrPortBusy)
	}
	for _, a := range Agents {
		if !PortFree(a.Port) {
			return fmt.Errorf("%s port 127.0.0.1:%d: %w", a.Name, a.Port, ErrPortBusy)
		}
	}
	return nil
}

// WaitHTTP polls url until it answers with status want (or any status when
// want is 0), up to timeout.
func WaitHTTP(ctx context.Context, client *http.Client, url string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if want == 0 || resp.StatusCode == want {
				return nil
			}
			last = fmt.Errorf("HTTP %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", url, timeout, last)
}

// Certs generates the certificates, and an empty CRL, when missing.
func (l Layout) Certs() error {
	if err := certgen.Generate(certgen.Options{Dir: l.CertsDir}); err != nil {
		return err
	}
	if _, err := os.Stat(certgen.CRLPath(l.CertsDir)); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return certgen.RefreshCRL(certgen.CRLOptions{Dir: l.CertsDir})
}

// Source loads one certgen identity.
func (l Layout) Source(name string) (certload.Source, error) {
	cert, key := certgen.LeafPaths(l.CertsDir, name)
	src, _, err := certload.Load(certload.Config{CertPath: cert, KeyPath: key, CAPath: certgen.BundlePath(l.CertsDir)}, certload.Options{PollInterval: time.Hour})
	return src, err
}

// Client is an mTLS client presenting name's certificate to server, a
// principal of the roster verified by name whatever address is dialed.
func (l Layout) Client(name, server string) (*http.Client, error) {
	src, err := l.Source(name)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: certload.ClientConfig(src, agentapi.AuthorizeAgent(server), certload.ClientOptions{ServerName: agentapi.DNSName(server)}),
	}}, nil
}

// GoBuild builds pkg into out with extra environment (GOOS, tags...).
func GoBuild(ctx context.Context, out, pkg string, env []string, tags string) error {
	args := []string{"build", "-trimpath", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// ErrPortBusy: a port the local system needs is taken.
var ErrPortBusy = errors.New("port already in use")
