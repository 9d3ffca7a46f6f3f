package lambda_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/dev/localrun"
	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/procgroup"
)

// TestBootstrapUnderRuntimeInterfaceEmulator builds the real bootstrap and
// invokes it once through the Lambda Runtime Interface Emulator, with its
// secrets in moto_server and the real identity provider and agents behind.
func TestBootstrapUnderRuntimeInterfaceEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bootstrap and installs the emulator")
	}
	e := setup(t)
	dir := t.TempDir()
	bootstrap := filepath.Join(dir, "bootstrap")
	if err := localrun.GoBuild(t.Context(), bootstrap, "../cmd/lambda", []string{"CGO_ENABLED=0"}, "lambda.norpc"); err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = t.TempDir()
	}
	rie, err := localrun.InstallRIE(t.Context(), filepath.Join(cache, "ca-a2a", "rie-"+localrun.RIEVersion))
	if err != nil {
		t.Fatal(err)
	}
	port, apiPort := loopback.Port(t), loopback.Port(t)
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", apiPort), bootstrap)
	cmd.Env = append(os.Environ(),
		"AWS_ENDPOINT_URL="+os.Getenv("AWS_ENDPOINT_URL"), "AWS_REGION=eu-west-3", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"OIDC_ISSUER="+e.stack.IdP.Issuer, "OIDC_TOKEN_URL="+e.stack.IdP.TokenURL, "ORCHESTRATOR_URL="+e.stack.URLs["orchestrator"])
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	proc, err := procgroup.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Stop(syscall.SIGKILL, 0) })

	url := fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", port)
	client := &http.Client{Timeout: 60 * time.Second}
	var answer string
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Post(url, "application/json", bytes.NewReader(load(t, "sqs-mixed-with-poison.json")))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answer = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulator not reachable: %v\n%s", err, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := `{"batchItemFailures":[{"itemIdentifier":"poison-1"},{"itemIdentifier":"missing-1"}]}`
	if strings.TrimSpace(answer) != want {
		t.Fatalf("answer %s, want %s\n%s", answer, want, out.String())
	}
}
