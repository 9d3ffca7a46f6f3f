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
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/procgroup"
	"github.com/ca-a2a/ca-a2a/internal/testutil/ci"
)

const (
	// readyTimeout bounds how long Start waits for one server to answer.
	// Idle, moto_server answers within a few seconds; CI loads both cores
	// with other test binaries beside it, so the bound is only for a hang.
	readyTimeout = 60 * time.Second
	// attempts covers the window between loopback.FreePort closing its listener and
	// moto_server binding the port, where another process may take it.
	attempts = 3
	// maxLog is how much of the server's output a failure report quotes;
	// the whole output stays in the log file.
	maxLog = 64 << 10
)

// Start runs moto_server on a free loopback port until the test ends and
// returns its endpoint, http://127.0.0.1:PORT. It changes no process-wide
// state; pass the endpoint to Env or to the SDK's BaseEndpoint.
//
// Without moto_server on PATH the test fails when CI is set and is skipped,
// loudly, elsewhere. The server's process group is killed when the test ends.
// Its output goes to a file in the temporary directory ($TMPDIR) that is
// removed when the test passes; when the test fails, the file is kept and its
// path and tail are logged.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		ci.Required(t, "moto: moto_server is not on PATH (pip install 'moto[server]'), so the AWS code paths are not tested")
	}
	var lastErr error
	var failedLogs []string // of attempts that a later one replaces
	defer func() {
		for _, p := range failedLogs {
			os.Remove(p)
		}
	}()
	for i := 0; i < attempts; i++ {
		endpoint, logPath, err := start(t, bin)
		if err == nil {
			return endpoint
		}
		lastErr = err
		if !errors.Is(err, errExited) || i == attempts-1 {
			break // a server that runs but never answers will not do better on another port
		}
		failedLogs = append(failedLogs, logPath)
	}
	t.Fatalf("moto: %v", lastErr)
	return ""
}

var errExited = errors.New("moto_server exited before it was ready")

// server is one moto_server process.
type server struct {
	proc    *procgroup.Process
	logPath string // stdout and stderr of the process group
}

// tail returns the last maxLog bytes of the server's output.
func (s *server) tail() string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return fmt.Sprintf("(output unreadable: %v)", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxLog {
		_, _ = f.Seek(-maxLog, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func (s *server) stop() {
	// The shim on PATH (pyenv, venv) may fork python: kill the whole group.
	s.proc.Stop(syscall.SIGKILL, 0)
}

// start runs one server. On failure the error quotes the output and names
// the log file, which is kept.
func start(t testing.TB, bin string) (endpoint, logPath string, err error) {
	port, err := loopback.FreePort()
	if err != nil {
		return "", "", err
	}
	// The child writes straight into the file: no pipe that a surviving
	// grandchild could hold open and no copying goroutine.
	log, err := os.CreateTemp("", "moto_server-*.log")
	if err != nil {
		return "", "", err
	}
	defer log.Close() // the child has its own descriptor
	s := &server{logPath: log.Name()}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = log, log
	if s.proc, err = procgroup.Start(cmd); err != nil {
		os.Remove(s.logPath)
		return "", "", fmt.Errorf("starting %s: %w", bin, err)
	}

	endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitReady(endpoint, s.proc.Exited()); err != nil {
		s.stop()
		return "", s.logPath, fmt.Errorf("%w\n--- moto_server output (%s) ---\n%s", err, s.logPath, s.tail())
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("moto_server %s output kept in %s; last %d KiB:\n%s", endpoint, s.logPath, maxLog>>10, s.tail())
			return
		}
		os.Remove(s.logPath)
	})
	return endpoint, s.logPath, nil
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
