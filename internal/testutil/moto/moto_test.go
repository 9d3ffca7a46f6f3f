package moto

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// logs returns the moto_server log files in dir.
func logs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "moto_server-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStartEnvAndCleanup(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where Start puts the log file
	var endpoint string
	t.Run("server", func(t *testing.T) {
		endpoint = Start(t)
		if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
			t.Fatalf("endpoint %q", endpoint)
		}
		if l := logs(t, tmp); len(l) != 1 {
			t.Errorf("log files %v, want one", l)
		} else if st, err := os.Stat(l[0]); err != nil || st.Size() == 0 {
			t.Errorf("log file %s empty or missing: %v", l[0], err)
		}
		t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:1") // Env must override it
		t.Setenv("AWS_PROFILE", "someone-elses")
		Env(t, endpoint)
		cfg, err := config.LoadDefaultConfig(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Region != "eu-west-3" {
			t.Errorf("region %q", cfg.Region)
		}
		sm := secretsmanager.NewFromConfig(cfg)
		if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String("x"), SecretString: aws.String("y")}); err != nil {
			t.Fatal(err)
		}
	})
	if os.Getenv("AWS_ENDPOINT_URL") == endpoint {
		t.Error("Env leaked past its test")
	}
	// The subtest's cleanup killed the server and removed the log of a pass.
	client := &http.Client{Timeout: time.Second}
	if resp, err := client.Get(endpoint + "/moto-api/"); err == nil {
		resp.Body.Close()
		t.Fatal("moto_server still answers after its test ended")
	}
	if l := logs(t, tmp); len(l) != 0 {
		t.Errorf("log files %v left after a passing test", l)
	}
}

// failedTB reports a failed test, so that Start's cleanup keeps the log.
type failedTB struct {
	testing.TB
	logged []string
}

func (f *failedTB) Failed() bool { return true }
func (f *failedTB) Logf(format string, args ...any) {
	f.logged = append(f.logged, fmt.Sprintf(format, args...))
}

func TestLogKeptWhenTestFails(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ft := &failedTB{}
	t.Run("server", func(t *testing.T) {
		ft.TB = t
		Start(ft)
	})
	l := logs(t, tmp)
	if len(l) != 1 {
		t.Fatalf("log files %v, want the failed test's one kept", l)
	}
	if len(ft.logged) != 1 || !strings.Contains(ft.logged[0], l[0]) {
		t.Errorf("logged %q, want the path %s", ft.logged, l[0])
	}
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")
	skipped := false
	t.Run("outside CI", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t)
	})
	if !skipped {
		t.Error("want a skip outside CI")
	}
	// In CI the same is a failure; a fake testing.TB records it.
	t.Setenv("CI", "true")
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); Start(ft) }()
	<-done
	if !ft.fatal {
		t.Error("want a failure in CI")
	}
}

type fatalRecorder struct {
	testing.TB
	fatal bool
}

func (f *fatalRecorder) Helper()               {}
func (f *fatalRecorder) Fatal(...any)          { f.fatal = true; runtime.Goexit() }
func (f *fatalRecorder) Fatalf(string, ...any) { f.fatal = true; runtime.Goexit() }
func (f *fatalRecorder) Skip(...any)           { runtime.Goexit() }
