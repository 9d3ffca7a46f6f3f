package moto

import (
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func TestStartEnvAndCleanup(t *testing.T) {
	var endpoint string
	t.Run("server", func(t *testing.T) {
		endpoint = Start(t)
		if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
			t.Fatalf("endpoint %q", endpoint)
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
	// The subtest's cleanup killed the server.
	client := &http.Client{Timeout: time.Second}
	if resp, err := client.Get(endpoint + "/moto-api/"); err == nil {
		resp.Body.Close()
		t.Fatal("moto_server still answers after its test ended")
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
