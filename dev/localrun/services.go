package localrun

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ca-a2a/ca-a2a/internal/certgen"
	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/pgcluster"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// StartMoto starts moto_server on MotoPort unless one already answers there.
func (l Layout) StartMoto(ctx context.Context, g *Group) (started bool, err error) {
	probe := &http.Client{Timeout: time.Second}
	if !PortFree(l.MotoPort) {
		if WaitHTTP(ctx, probe, l.MotoEndpoint()+"/moto-api/", 200, 2*time.Second) == nil {
			return false, nil
		}
		return false, fmt.Errorf("127.0.0.1:%d: %w and it is not moto_server (set MOTO_PORT)", l.MotoPort, ErrPortBusy)
	}
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return false, fmt.Errorf("moto_server is not installed")
	}
	if err := g.Start("moto_server", l.Log("moto"), nil, bin, "-H", "127.0.0.1", "-p", fmt.Sprint(l.MotoPort)); err != nil {
		return false, err
	}
	return true, WaitHTTP(ctx, probe, l.MotoEndpoint()+"/moto-api/", 200, 30*time.Second)
}

// Publish writes the certificates to moto's Secrets Manager, as
// "certgen publish" does.
func (l Layout) Publish(ctx context.Context, agents []string) error {
	for _, kv := range l.AWSEnv() {
		k, v, _ := cut(kv)
		os.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(l.MotoEndpoint()) })
	return certgen.Publish(ctx, sm, l.CertsDir, "ca-a2a/", agents, func(string, ...any) {})
}

func cut(kv string) (string, string, bool) {
	for i := range kv {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// StartIdP starts the local identity provider and waits for its JWKS.
func (l Layout) StartIdP(ctx context.Context, g *Group) error {
	if !PortFree(l.IdPPort) {
		return fmt.Errorf("identity provider port 127.0.0.1:%d: %w (set IDP_PORT)", l.IdPPort, ErrPortBusy)
	}
	env := []string{"CERTS_DIR=" + l.CertsDir, fmt.Sprintf("IDP_PORT=%d", l.IdPPort), "IDP_LISTEN_HOST=127.0.0.1",
		"IDP_STATE_DIR=" + filepath.Join(l.StateDir, "idp")}
	if err := g.Start("idp", l.Log("idp"), env, "bash", "dev/idp/run.sh"); err != nil {
		return err
	}
	client, err := l.Client(agentapi.Lambda, agentapi.Keycloak)
	if err != nil {
		return err
	}
	// The first start installs the npm packages: allow for it.
	return WaitHTTP(ctx, client, l.JWKSURL(), 200, 3*time.Minute)
}

// StartArchiveDB starts a throwaway PostgreSQL cluster for the archivist
// (internal/pgcluster: a temporary directory, a free port on 127.0.0.1, as
// an unprivileged account when run as root), creates the database archive
// owned by the role archivist with a random password, and sets
// l.ArchiveEnv: ARCHIVE_DSN without the password, ARCHIVE_DB_PASSWORD with
// it, as in AWS. Plain TCP is allowed on loopback only. g.Stop stops the
// cluster and deletes it; its log stays in StateDir/logs/postgres.log.
func (l *Layout) StartArchiveDB(g *Group) (addr string, err error) {
	bins, err := pgcluster.FindBinaries()
	if err != nil {
		return "", fmt.Errorf("%w: ARCHIVE=postgres needs the PostgreSQL server programs (apt-get install postgresql)", err)
	}
	if err := os.MkdirAll(filepath.Dir(l.Log("postgres")), 0o700); err != nil {
		return "", err
	}
	c, err := pgcluster.Start(bins, pgcluster.Options{Prefix: "ca-a2a-archive", LogPath: l.Log("postgres")})
	if c != nil {
		g.OnStop(func() { _ = c.Close(false) })
	}
	if err != nil {
		return "", fmt.Errorf("%w (see %s)", err, l.Log("postgres"))
	}
	password, err := pgcluster.RandomPassword(16)
	if err != nil {
		return "", err
	}
	if err := c.CreateDatabase("archive", "archivist", password); err != nil {
		return "", err
	}
	l.ArchiveEnv = []string{"ARCHIVE_DSN=" + c.DSN("archivist", "", "archive"), "ARCHIVE_DB_PASSWORD=" + password}
	return c.Addr(), nil
}

// StartAgents builds the agent binary and starts the four agents, waiting
// until each reports healthy.
func (l Layout) StartAgents(ctx context.Context, g *Group) error {
	for _, a := range Agents {
		if !PortFree(a.Port) {
			return fmt.Errorf("%s port 127.0.0.1:%d: %w", a.Name, a.Port, ErrPortBusy)
		}
	}
	bin, _ := filepath.Abs(l.Bin("agent"))
	if err := GoBuild(ctx, bin, "./cmd/agent", nil, ""); err != nil {
		return err
	}
	if err := os.MkdirAll(l.Documents(), 0o700); err != nil {
		return err
	}
	for _, a := range Agents {
		if err := g.Start(a.Name, l.Log(a.Name), l.AgentEnv(a.Name, a.Port), bin); err != nil {
			return err
		}
	}
	for _, a := range Agents {
		client, err := l.Client(agentapi.Lambda, a.Name)
		if err != nil {
			return err
		}
		if err := WaitHTTP(ctx, client, AgentURL(a.Name)+"/health", 200, 30*time.Second); err != nil {
			return fmt.Errorf("%s: %w (see %s)", a.Name, err, l.Log(a.Name))
		}
	}
	return nil
}

// Invoke runs the Lambda bootstrap under the Runtime Interface Emulator,
// sends it event, and returns its answer. The emulator and the bootstrap
// are stopped before it returns.
func (l Layout) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	bootstrap, _ := filepath.Abs(l.Bin("bootstrap"))
	if err := GoBuild(ctx, bootstrap, "./cmd/lambda", []string{"CGO_ENABLED=0"}, "lambda.norpc"); err != nil {
		return nil, err
	}
	rie, err := l.InstallRIE(ctx)
	if err != nil {
		return nil, err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	var g Group
	defer g.Stop()
	err = g.Start("rie", l.Log("lambda"), l.LambdaEnv(), rie,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", apiPort), bootstrap)
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", port)
	client := &http.Client{Timeout: 120 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Post(url, "application/json", bytes.NewReader(event))
		if err == nil {
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			if err != nil {
				return nil, err
			}
			if resp.StatusCode != http.StatusOK {
				return body, fmt.Errorf("emulator answered HTTP %d", resp.StatusCode)
			}
			return body, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("runtime interface emulator not reachable: %v (see %s)", err, l.Log("lambda"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// InstallRIE installs the pinned emulator into the state directory.
func (l Layout) InstallRIE(ctx context.Context) (string, error) {
	return InstallRIE(ctx, filepath.Dir(l.Bin("aws-lambda-rie")))
}

// InstallRIE installs the pinned emulator into dir (through the Go module
// proxy: no Docker) and returns its path.
func InstallRIE(ctx context.Context, dir string) (string, error) {
	bin, _ := filepath.Abs(filepath.Join(dir, "aws-lambda-rie"))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@"+RIEVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(bin), "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("installing the runtime interface emulator: %v\n%s", err, b)
	}
	return bin, nil
}
