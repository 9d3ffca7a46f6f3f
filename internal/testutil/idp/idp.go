// Package idp runs the real local identity provider (dev/idp, the npm
// oidc-provider) on a free loopback port for tests.
package idp

import (
	"bufio"
	"crypto/ecdsa"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/ca-a2a/ca-a2a/internal/testutil/repo"
)

// ServerName is the name the identity provider's certificate carries.
const ServerName = "keycloak.ca-a2a.local"

// IdP is a running identity provider.
type IdP struct {
	// Issuer is https://keycloak.ca-a2a.local:PORT/realms/ca-a2a.
	Issuer string
	// TokenURL and JWKSURL dial 127.0.0.1; clients verify ServerName.
	TokenURL, JWKSURL string
	// Addr is 127.0.0.1:PORT.
	Addr string

	stateDir string
}

// SigningKey returns the provider's signing key, for tests that need tokens
// the provider would never issue (expired, unbound, for another audience)
// but that carry its real signature.
func (p *IdP) SigningKey(t testing.TB) (kid string, key *ecdsa.PrivateKey) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(p.stateDir, "signing-key.jwk.json"))
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromRawJSON(data, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k, ok := jwk.Key().(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("signing key is %T", jwk.Key())
	}
	return jwk.Marshal().KID, k
}

// Option changes how the provider runs.
type Option func(*[]string)

// TokenTTL sets the access token lifetime.
func TokenTTL(d time.Duration) Option {
	return func(env *[]string) { *env = append(*env, "IDP_TOKEN_TTL="+strconv.Itoa(int(d.Seconds()))) }
}

// Clients sets the registered clients.
func Clients(names ...string) Option {
	return func(env *[]string) { *env = append(*env, "IDP_CLIENTS="+strings.Join(names, ",")) }
}

var installOnce sync.Mutex

// Install runs "npm ci" in dev/idp when its packages are missing, once per
// machine at a time (test packages run in parallel).
func Install(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is required in CI")
		}
		t.Skip("SKIPPING: node not installed; the identity provider interop is untested here")
	}
	dir := filepath.Join(repo.Root(t), "dev", "idp")
	installOnce.Lock()
	defer installOnce.Unlock()
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in dev/idp: %v\n%s", err, out)
		}
	}
	return dir
}

// Start runs the provider with the certificates of certsDir (certgen
// layout) until the test ends.
func Start(t testing.TB, certsDir string, opts ...Option) *IdP {
	t.Helper()
	dir := Install(t)
	port := freePort(t)
	stateDir := t.TempDir()
	env := append(os.Environ(),
		"CERTS_DIR="+certsDir,
		"IDP_PORT="+strconv.Itoa(port),
		"IDP_LISTEN_HOST=127.0.0.1",
		"IDP_STATE_DIR="+stateDir,
	)
	for _, o := range opts {
		o(&env)
	}
	cmd := exec.Command("node", filepath.Join(dir, "server.js"))
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	var mu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return stderr.Write(p) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "idp: listening") {
				close(ready)
				break
			}
		}
		for sc.Scan() { // keep draining
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("identity provider did not start within 30s:\n%s", stderr.String())
	}
	issuer := fmt.Sprintf("https://%s:%d/realms/ca-a2a", ServerName, port)
	base := fmt.Sprintf("https://127.0.0.1:%d/realms/ca-a2a/protocol/openid-connect", port)
	return &IdP{Issuer: issuer, TokenURL: base + "/token", JWKSURL: base + "/certs", Addr: fmt.Sprintf("127.0.0.1:%d", port), stateDir: stateDir}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
