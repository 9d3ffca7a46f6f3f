package bench

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/testutil/agentproc"
	"github.com/ca-a2a/ca-a2a/internal/testutil/repo"
	"github.com/ca-a2a/ca-a2a/internal/testutil/tokens"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// Binaries are the programs the process rows run, built once per run.
type Binaries struct {
	// Agent is cmd/agent as production builds it (CGO_ENABLED=0,
	// -trimpath, stripped: the Dockerfile's flags).
	Agent string
	// BenchAgent is cmd/agent built with -tags benchauthbypass: the same
	// code, plus CA_A2A_BENCH_AUTH (agentsvc/runtime/server/benchauth_on.go).
	BenchAgent string
	// Load is the bench command, for `bench load`.
	Load string
}

// binaries builds the Binaries once into dir and returns them (or the
// build's error) to every caller.
type binaries struct {
	dir  string
	once sync.Once
	bins Binaries
	err  error
}

func (b *binaries) get(tb testing.TB) Binaries {
	tb.Helper()
	b.once.Do(func() {
		b.bins, b.err = build(tb, b.dir)
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.bins
}

func build(tb testing.TB, dir string) (Binaries, error) {
	root := repo.Root(tb)
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	bins := Binaries{Agent: filepath.Join(dir, "agent"), BenchAgent: filepath.Join(dir, "agent-benchauth"), Load: filepath.Join(dir, "bench")}
	for _, b := range []struct {
		out, pkg string
		args     []string
	}{
		{bins.Agent, "./cmd/agent", nil},
		{bins.BenchAgent, "./cmd/agent", []string{"-tags", "benchauthbypass"}},
		{bins.Load, "./bench/cmd/bench", nil},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		// As the image builds the agent: static, stripped.
		args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", b.out}, b.args...)
		cmd := exec.CommandContext(ctx, goBin, append(args, b.pkg)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return bins, fmt.Errorf("go build %s %v: %v\n%s", b.pkg, b.args, err, out)
		}
	}
	return bins, nil
}

// Files are a fixture's certificates on disk, as agents read them.
type Files struct {
	Dir     string
	CA, CRL string // the CA bundle, and an empty CRL of the CA
	// Token is a file holding a token bound to the fixture's client (the
	// Lambda), valid for an hour.
	Token string
}

// LeafPaths returns the certificate and key files of name.
func (fl Files) LeafPaths(name string) (cert, key string) {
	return filepath.Join(fl.Dir, name+"-cert.pem"), filepath.Join(fl.Dir, name+"-key.pem")
}

// WriteFiles writes the CA, an empty CRL, a certificate for each of names
// and for the client ("lambda", f.Client), and a token for the client.
func (f *Fixture) WriteFiles(tb testing.TB, names ...string) Files {
	tb.Helper()
	fl := Files{Dir: tb.TempDir()}
	fl.CA, fl.CRL, fl.Token = filepath.Join(fl.Dir, "ca.pem"), filepath.Join(fl.Dir, "crl.pem"), filepath.Join(fl.Dir, "token")
	now := time.Now()
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(24 * time.Hour)}, f.CA.Cert, f.CA.Key)
	if err != nil {
		tb.Fatal(err)
	}
	claims := tokens.Claims(f.Client.Cert)
	claims["exp"] = now.Add(time.Hour).Unix()
	files := map[string][]byte{fl.CA: f.CA.PEM, fl.CRL: pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl}),
		fl.Token: []byte(f.IdP.Mint(tb, f.IdP.EC, claims, nil))}
	cert, key := fl.LeafPaths(agentapi.Lambda)
	files[cert], files[key] = f.Client.CertPEM, f.Client.KeyPEM
	for _, n := range names {
		leaf := f.CA.Issue(tb, n)
		cert, key := fl.LeafPaths(n)
		files[cert], files[key] = leaf.CertPEM, leaf.KeyPEM
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return fl
}

// Process is an agent running as its own process (cmd/agent).
type Process struct {
	Name string
	URL  string // https://127.0.0.1:PORT
	Pid  int
	ap   *agentproc.Process
}

// AgentEnv is the environment of agent name on port, as local runs
// configure it, with the fixture's identity provider: certificates from
// fl, the CRL applied, the JWKS and token endpoint of f.IdP (over mTLS,
// verified by name), no EMF lines, one JSON access line per request.
func (f *Fixture) AgentEnv(fl Files, name string, port int) map[string]string {
	cert, key := fl.LeafPaths(name)
	return map[string]string{
		"AGENT_NAME": name, "AGENT_ADDR": "127.0.0.1:" + strconv.Itoa(port),
		"MTLS_CERT_PATH": cert, "MTLS_KEY_PATH": key, "MTLS_CA_CERT_PATH": fl.CA, "MTLS_CRL_PATH": fl.CRL,
		"OIDC_ISSUER": tokens.Issuer, "OIDC_JWKS_URL": f.IdP.JWKSURL, "OIDC_TOKEN_URL": f.IdP.TokenURL,
		"METRICS_EMF": "false", "LOG_LEVEL": "info",
	}
}

// StartProcess runs bin with env until tb ends and waits until it answers
// GET /health over mTLS (any status: a degraded agent is up).
func (f *Fixture) StartProcess(tb testing.TB, bin string, env map[string]string) *Process {
	tb.Helper()
	env = maps.Clone(env)
	env["HOME"] = os.TempDir()
	// The access log goes through a pipe, as a container's does; its tail
	// is kept for a failure message.
	ap := agentproc.Start(tb, agentproc.Config{Bin: bin, Env: env, OutputMax: 32 << 10})
	p := &Process{Name: env["AGENT_NAME"], URL: "https://" + env["AGENT_ADDR"], Pid: ap.Pid(), ap: ap}
	client := f.HTTPClient(tb, p.Name, 1)
	ap.WaitUntil(tb, "answer GET /health", func() bool {
		resp, err := client.Get(p.URL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return p
}

// CPU reads the process's CPU time.
func (p *Process) CPU(tb testing.TB) CPUTime {
	tb.Helper()
	c, err := ReadCPU(p.Pid)
	if err != nil {
		tb.Fatalf("%s: %v", p.Name, err)
	}
	return c
}

// TreeCPU reads the CPU time of the process and its descendants.
func (p *Process) TreeCPU(tb testing.TB) CPUTime {
	tb.Helper()
	c, err := TreeCPU(p.Pid)
	if err != nil {
		tb.Fatalf("%s: %v", p.Name, err)
	}
	return c
}

// Log is the tail of the process's output.
func (p *Process) Log() string { return p.ap.Output.String() }
