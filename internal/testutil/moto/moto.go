// Package moto starts a moto_server on 127.0.0.1 for tests that talk to
// Secrets Manager, S3 or SQS through the real AWS SDK.
//
// Typical use:
//
//	endpoint := moto.Start(t)
//	moto.Env(t, endpoint)
//	cfg, err := config.LoadDefaultConfig(ctx) // now talks to moto_server
package moto

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
)

const (
	// readyTimeout bounds how long Start waits for one server to answer.
	readyTimeout = 20 * time.Second
	// attempts covers the window between loopback.FreePort closing its listener and
	// moto_server binding the port, where another process may take it.
	attempts = 3
	// maxLog keeps the tail of the server's output for failure reports.
	maxLog = 64 << 10
)

// Start runs moto_server on a free loopback port until the test ends and
// returns its endpoint, http://127.0.0.1:PORT. It changes no process-wide
// state; pass the endpoint to Env or to the SDK's BaseEndpoint.
//
// Without moto_server on PATH the test fails when CI is set and is skipped,
// loudly, elsewhere. The server's process group is killed when the test ends;
// its output is logged when the test failed.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("moto: moto_server is required in CI but is not on PATH (pip install 'moto[server]')")
		}
		t.Skip("SKIPPING: moto_server is not on PATH (pip install 'moto[server]'); AWS code paths are NOT tested here")
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		endpoint, err := start(t, bin)
		if err == nil {
			return endpoint
		}
		lastErr = err
		if !errors.Is(err, errExited) {
			break // a server that runs but never answers will not do better on another port
		}
	}
	t.Fatalf("moto: %v", lastErr)
	return ""
}

var errExited = errors.New("moto_server exited before it was ready")

// server is one moto_server process.
type server struct {
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	exited chan struct{} // closed once cmd.Wait returned
}

func (s *server) stop() {
	// The shim on PATH (pyenv, venv) may fork python: kill the whole group.
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
}

func start(t testing.TB, bin string) (string, error) {
	port, err := loopback.FreePort()
	if err != nil {
		return "", err
	}
	s := &server{out: &syncbuf.Buffer{Max: maxLog}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()

	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitReady(endpoint, s.exited); err != nil {
		s.stop()
		return "", fmt.Errorf("%w\n--- moto_server output ---\n%s", err, s.out.String())
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("moto_server %s output (last %d KiB):\n%s", endpoint, maxLog>>10, s.out.String())
		}
	})
	return endpoint, nil
}

func waitReady(endpoint string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := client.Get(endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /moto-api/: %s", resp.Status)
		}
		select {
		case <-exited:
			return errExited
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("moto_server did not answer on %s within %s: %v", endpoint, readyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Env points the AWS SDK of this test at endpoint with dummy credentials, and
// shields it from the developer's own AWS configuration. Everything is undone
// when the test ends (t.Setenv), which also means t must not be parallel.
func Env(t *testing.T, endpoint string) {
	t.Helper()
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_REGION", "eu-west-3")
	t.Setenv("AWS_DEFAULT_REGION", "eu-west-3")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	// Empty means unset to the SDK; t.Setenv restores the old values.
	for _, k := range []string{
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		// These would send a service elsewhere or make the SDK ignore AWS_ENDPOINT_URL.
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS",
		"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_LAMBDA",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}
