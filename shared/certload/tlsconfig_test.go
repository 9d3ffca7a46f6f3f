package certload_test

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/internal/testutil/poll"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// orchestrator is how clients verify the test servers: by agent name,
// whatever address they dial.
var orchestrator = agentapi.AuthorizeAgent("orchestrator")

func static(t *testing.T, l *pki.Leaf, caPEM []byte, usage certload.Usage) certload.Source {
	t.Helper()
	s, err := certload.FromPEM(l.CertPEM, l.KeyPEM, caPEM, origin(), certload.Options{Usage: usage})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startServer serves "ok" over mTLS with the real ServerConfig; it records
// the identity of each client it saw.
func startServer(t *testing.T, src certload.Source, authorize certload.Authorizer, opts certload.ServerOptions) (*testServer, *atomic.Value) {
	t.Helper()
	var seen atomic.Value
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A plain http.Server, as the agents run it: httptest.Server would add a
	// certificate of its own to the config.
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.TLS.PeerCertificates) > 0 {
				id, _ := agentapi.Identity(r.TLS.PeerCertificates[0])
				seen.Store(id)
			}
			_, _ = io.WriteString(w, "ok")
		}),
		TLSConfig: certload.ServerConfig(src, authorize, opts),
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return &testServer{URL: "https://" + ln.Addr().String()}, &seen
}

type testServer struct{ URL string }

func get(t *testing.T, cfg *tls.Config, url string) error {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return err
}

func TestMutualTLS(t *testing.T) {
	ca := pki.NewCA(t, "CA A2A Root CA")
	rogue := pki.NewCA(t, "Rogue CA")
	server := static(t, ca.Issue(t, "orchestrator"), ca.PEM, certload.UsageServerAndClient)
	lambda := static(t, ca.Issue(t, "lambda"), ca.PEM, certload.UsageClient)
	srv, seen := startServer(t, server, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true})

	// A rogue client: its own CA, trusts ours (it only wants in).
	rogueLeaf := rogue.Issue(t, "lambda")
	rogueCfg := certload.ClientConfig(static(t, rogueLeaf, rogue.PEM, certload.UsageClient), orchestrator, certload.ClientOptions{})
	rogueCfg.VerifyConnection = nil
	now := time.Now()
	expiredLeaf := ca.Issue(t, "lambda", pki.Validity(now.Add(-48*time.Hour), now.Add(-time.Hour)))
	serverOnlyLeaf := ca.Issue(t, "lambda", pki.EKU(0x1)) // serverAuth only

	tests := []struct {
		name    string
		cfg     *tls.Config
		wantErr string
	}{
		{"valid client, dial by address, verify by name", certload.ClientConfig(lambda, orchestrator, certload.ClientOptions{}), ""},
		{"valid client, verify by host name", certload.ClientConfig(lambda, certload.AuthorizeDNSName("orchestrator.ca-a2a.local"), certload.ClientOptions{}), ""},
		{"server presents another name than expected", certload.ClientConfig(lambda, certload.AuthorizeDNSName("extractor.ca-a2a.local"), certload.ClientOptions{}), "not valid for"},
		{"no server name at all", certload.ClientConfig(lambda, certload.AuthorizeDNSName(""), certload.ClientOptions{}), "not valid for"},
		{"server authorizer refuses the peer", certload.ClientConfig(lambda, agentapi.AuthorizeAgent("extractor"), certload.ClientOptions{}), "not authorized"},
		{"no authorizer refuses every server", certload.ClientConfig(lambda, nil, certload.ClientOptions{}), "no authorizer"},
		{"no client certificate", &tls.Config{InsecureSkipVerify: true}, "certificate"},
		{"client certificate from another CA", rogueCfg, "certificate"},
		{"expired client certificate", rawClient(expiredLeaf), "certificate"},
		{"client certificate without clientAuth", rawClient(serverOnlyLeaf), "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := get(t, tc.cfg, srv.URL)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got := seen.Load(); got != "lambda" {
					t.Fatalf("server saw client %v, want lambda", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// rawClient presents leaf without any local validation, as an attacker would.
func rawClient(leaf *pki.Leaf) *tls.Config {
	c := leaf.TLS()
	return &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{c}}
}

func TestServerAuthorizer(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	extractor := static(t, ca.Issue(t, "extractor"), ca.PEM, certload.UsageServerAndClient)
	asLambda := certload.ClientConfig(static(t, ca.Issue(t, "lambda"), ca.PEM, certload.UsageClient), agentapi.AuthorizeAgent("extractor"), certload.ClientOptions{})
	asOrchestrator := certload.ClientConfig(static(t, ca.Issue(t, "orchestrator"), ca.PEM, certload.UsageClient), agentapi.AuthorizeAgent("extractor"), certload.ClientOptions{})
	tests := []struct {
		name      string
		authorize certload.Authorizer
		client    *tls.Config
		ok        bool
	}{
		{"admitted agent", agentapi.AuthorizeAgent("orchestrator"), asOrchestrator, true},
		{"another agent", agentapi.AuthorizeAgent("orchestrator"), asLambda, false},
		{"nil authorizer refuses every client", nil, asOrchestrator, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := startServer(t, extractor, tc.authorize, certload.ServerOptions{RequireClientCert: true})
			if err := get(t, tc.client, srv.URL); (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestResumedSessionsAreVerified checks that a session resumed from a ticket
// still runs the client's VerifyConnection: a resumed connection must not
// skip the identity check.
func TestResumedSessionsAreVerified(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	srv, _ := startServer(t, static(t, ca.Issue(t, "orchestrator"), ca.PEM, certload.UsageServerAndClient), agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true})
	var verified, resumed atomic.Int32
	cfg := certload.ClientConfig(static(t, ca.Issue(t, "lambda"), ca.PEM, certload.UsageClient), orchestrator,
		certload.ClientOptions{SessionCache: tls.NewLRUClientSessionCache(8)})
	inner := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		verified.Add(1)
		if cs.DidResume {
			resumed.Add(1)
		}
		return inner(cs)
	}
	for range 3 {
		if err := get(t, cfg, srv.URL); err != nil { // a new transport each time: a new connection
			t.Fatal(err)
		}
	}
	if resumed.Load() == 0 {
		t.Fatal("no session was resumed; the test proves nothing")
	}
	if verified.Load() != 3 {
		t.Fatalf("VerifyConnection ran %d times for 3 connections", verified.Load())
	}
}

func TestRotation(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	dir := t.TempDir()
	first := ca.Issue(t, "orchestrator")
	certPath, keyPath, caPath := pki.WriteFiles(t, dir, first, ca.PEM)
	files, err := certload.WatchFiles(certPath, keyPath, caPath, certload.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	srv, _ := startServer(t, files, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true})
	client := certload.ClientConfig(static(t, ca.Issue(t, "lambda"), ca.PEM, certload.UsageClient), orchestrator, certload.ClientOptions{})

	// A connection opened before the rotation keeps working after it.
	tr := &http.Transport{TLSClientConfig: client}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	served := func() []byte {
		t.Helper()
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.ReadAll(resp.Body)
		return resp.TLS.PeerCertificates[0].Raw
	}
	if got := served(); string(got) != string(first.Cert.Raw) {
		t.Fatal("server does not present the first certificate")
	}

	// A broken file keeps the old certificate.
	if err := os.WriteFile(certPath, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := files.Reload(); err == nil {
		t.Fatal("broken certificate accepted")
	}
	if files.Bundle().Leaf().Equal(first.Cert) == false {
		t.Fatal("broken file replaced the certificate")
	}

	// A valid new pair is picked up by the watcher without a restart.
	second := ca.Issue(t, "orchestrator")
	writeAtomic(t, keyPath, second.KeyPEM)
	writeAtomic(t, certPath, second.CertPEM)
	poll.Until(t, "the rotation picked up", func() bool { return files.Bundle().Leaf().Equal(second.Cert) })
	if got := served(); string(got) != string(first.Cert.Raw) {
		t.Fatal("the connection in flight changed certificate")
	}
	if err := get(t, client, srv.URL); err != nil {
		t.Fatal(err)
	}
	tr2 := &http.Transport{TLSClientConfig: client}
	defer tr2.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr2}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !resp.TLS.PeerCertificates[0].Equal(second.Cert) {
		t.Fatal("a new connection does not see the rotated certificate")
	}
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPrecedenceAndErrors(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	env := ca.Issue(t, "lambda")
	file := ca.Issue(t, "orchestrator")
	certPath, keyPath, caPath := pki.WriteFiles(t, t.TempDir(), file, ca.PEM)

	src, closeFn, err := certload.Load(certload.Config{
		CertPath: certPath, KeyPath: keyPath, CAPath: caPath,
		CertPEM: string(env.CertPEM), KeyPEM: string(env.KeyPEM), CAPEM: string(ca.PEM),
	}, certload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if !src.Bundle().Leaf().Equal(env.Cert) {
		t.Fatal("PEM contents must win over paths")
	}

	for name, cfg := range map[string]certload.Config{
		"nothing":      {},
		"partial PEM":  {CertPEM: string(env.CertPEM)},
		"partial path": {CertPath: certPath},
		"missing file": {CertPath: certPath, KeyPath: keyPath + ".missing", CAPath: caPath},
	} {
		if _, _, err := certload.Load(cfg, certload.Options{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	_, _, err = certload.Load(certload.Config{CertPEM: string(env.CertPEM), KeyPEM: string(file.KeyPEM), CAPEM: string(ca.PEM)}, certload.Options{})
	if !errors.Is(err, certload.ErrKeyMismatch) || !strings.Contains(err.Error(), "MTLS_KEY") {
		t.Fatalf("mismatch error = %v", err)
	}
}
