// Package idp runs the real local identity provider (dev/idp, the npm
// oidc-provider) on a free loopback port for tests.
package idp

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

	"github.com/ca-a2a/ca-a2a/internal/loopback"
	"github.com/ca-a2a/ca-a2a/internal/procgroup"
	"github.com/ca-a2a/ca-a2a/internal/testutil/ci"
	"github.com/ca-a2a/ca-a2a/internal/testutil/repo"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// ServerName is the name the identity provider's certificate carries.
const ServerName = agentapi.Keycloak + "." + agentapi.Domain

// readyTimeout bounds the wait for the provider's "listening" line once its
// packages are installed (npm ci is not counted). Idle, node is ready in
// under a second; CI runs test binaries of other packages (race-enabled
// agents, PostgreSQL, sandboxed parsers) beside it on two cores, which has
// taken it past 20 s.
const readyTimeout = 90 * time.Second

// IdP is a running identity provider.
type IdP struct {
	// Issuer is https://keycloak.ca-a2a.local:PORT/realms/ca-a2a, the exact
	// iss of its tokens.
	Issuer string
	// TokenURL and JWKSURL dial 127.0.0.1; clients verify ServerName.
	TokenURL, JWKSURL string
	// Addr is 127.0.0.1:PORT.
	Addr string
	// ServerName is the name to verify the provider's certificate against
	// (the package constant, here for callers that hold only an *IdP).
	ServerName string

	stateDir string
	out      *output
}

// Output returns what the provider printed so far (no tokens or keys).
func (p *IdP) Output() string { return p.out.String() }

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

// Option changes how the provider runs. Each option appends to the
// process environment; the last value of a variable wins.
type Option func(*[]string)

// TokenTTL sets the access token lifetime (whole seconds, at least one).
func TokenTTL(d time.Duration) Option {
	return func(env *[]string) { *env = append(*env, "IDP_TOKEN_TTL="+strconv.Itoa(int(d.Seconds()))) }
}

// Clients sets the registered clients.
func Clients(names ...string) Option {
	return func(env *[]string) { *env = append(*env, "IDP_CLIENTS="+strings.Join(names, ",")) }
}

// ReloadInterval sets how often the provider looks for new TLS material
// (its certificate and key, the CA bundle); at least 10 ms.
func ReloadInterval(d time.Duration) Option {
	return func(env *[]string) { *env = append(*env, "IDP_RELOAD_INTERVAL="+strconv.Itoa(int(d.Milliseconds()))) }
}

// StateDir keeps the signing key in dir instead of a fresh temporary
// directory, so that a second provider started on it signs with the same key.
func StateDir(dir string) Option {
	return func(env *[]string) { *env = append(*env, "IDP_STATE_DIR="+dir) }
}

// installMu serialises installs inside this process; install.sh's file
// lock serialises them between test binaries (go test runs packages in
// parallel), CI and dev/idp/run.sh.
var installMu sync.Mutex

// Install runs dev/idp/install.sh ("npm ci" when the packages are missing
// or were installed from another package-lock.json) unless its stamp says
// they are in place, and returns that directory. Without node it skips the
// test, or fails it when CI is set.
func Install(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		ci.Required(t, "idp: node is not installed, so the tests against the real identity provider (dev/idp, the npm oidc-provider) do not run")
	}
	dir := filepath.Join(repo.Root(t), "dev", "idp")
	lockfile, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lockfile)
	// install.sh's stamp, written only beside a complete install.
	stamp, err := os.ReadFile(filepath.Join(dir, "node_modules", ".ca-a2a-lock.sha256"))
	if err == nil && strings.TrimSpace(string(stamp)) == hex.EncodeToString(sum[:]) {
		return dir
	}
	installMu.Lock()
	defer installMu.Unlock()
	if out, err := exec.Command("bash", filepath.Join(dir, "install.sh")).CombinedOutput(); err != nil {
		t.Fatalf("idp: %s/install.sh: %v\n%s", dir, err, out)
	}
	return dir
}

// Start runs the provider with the certificates of certsDir (certgen
// layout) on a free 127.0.0.1 port until the test ends, and returns once it
// accepts connections.
func Start(t testing.TB, certsDir string, opts ...Option) *IdP {
	t.Helper()
	dir := Install(t)
	certsDir, err := filepath.Abs(certsDir)
	if err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	// The port is probed, closed and handed to node, so another process can
	// take it in between; that failure is recognised and retried.
	for attempt := 1; ; attempt++ {
		port := loopback.Port(t)
		env := append(os.Environ(),
			"CERTS_DIR="+certsDir,
			"IDP_HOST="+ServerName,
			"IDP_PORT="+strconv.Itoa(port),
			"IDP_LISTEN_HOST=127.0.0.1",
			"IDP_STATE_DIR="+stateDir,
		)
		for _, o := range opts {
			o(&env)
		}
		p, err := run(t, dir, env)
		if errors.Is(err, errPortTaken) && attempt < 3 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		p.Issuer = fmt.Sprintf("https://%s:%d%s", ServerName, port, agentapi.RealmPath)
		dialed := fmt.Sprintf("https://127.0.0.1:%d%s", port, agentapi.RealmPath)
		p.TokenURL, p.JWKSURL = agentapi.TokenEndpoint(dialed), agentapi.JWKSEndpoint(dialed)
		p.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		p.ServerName = ServerName
		p.stateDir = lastValue(env, "IDP_STATE_DIR")
		return p
	}
}

var errPortTaken = errors.New("idp: port taken")

// run starts node and waits for its ready line, its exit or the timeout.
func run(t testing.TB, dir string, env []string) (*IdP, error) {
	out := &output{ready: make(chan struct{})}
	cmd := exec.Command("node", filepath.Join(dir, "server.js"))
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = &out.stderr
	proc, err := procgroup.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("idp: start node: %w", err)
	}
	// SIGTERM first: the server closes its listener and exits; the group
	// kill makes sure nothing outlives the test.
	stop := func() { proc.Stop(syscall.SIGTERM, 3*time.Second) }
	select {
	case <-out.ready:
	case <-proc.Exited():
		if strings.Contains(out.String(), "EADDRINUSE") {
			return nil, errPortTaken
		}
		return nil, fmt.Errorf("idp: exited before it was ready (%v):\n%s", proc.Err(), out)
	case <-time.After(readyTimeout):
		state := procState(cmd.Process.Pid)
		stop()
		return nil, fmt.Errorf("idp: not ready within %s (node %s; load average %s):\n%s", readyTimeout, state, loadAverage(), out)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("identity provider output:\n%s", out)
		}
	})
	return &IdP{out: out}, nil
}

// output collects the provider's stdout and stderr and signals its ready
// line. Neither carries tokens or keys.
type output struct {
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr syncbuf.Buffer
	ready  chan struct{}
	seen   bool
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stdout.Write(p)
	if !o.seen && bytes.Contains(o.stdout.Bytes(), []byte("idp: listening ")) {
		o.seen = true
		close(o.ready)
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stdout.String() + o.stderr.String()
}

// procState is the state and CPU ticks of pid from /proc/<pid>/stat, to
// tell a starved provider from a stuck one when it is late.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "state unknown"
	}
	// The fields after the command name (which ends at the last ')'):
	// state is the first, utime and stime the 12th and 13th.
	_, rest, _ := bytes.Cut(b[bytes.LastIndexByte(b, ')')+1:], []byte(" "))
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return "state unknown"
	}
	return fmt.Sprintf("state %s, %s+%s CPU ticks", f[0], f[11], f[12])
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func lastValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
