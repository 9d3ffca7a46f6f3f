package tokensource_test

import (
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

// TestProviderClient: the identity provider is verified by name whatever
// address is dialed, and a redirect is answered back, never followed (it
// would carry the request, and the client certificate, elsewhere).
func TestProviderClient(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	kc := ca.Issue(t, agentapi.Keycloak)
	lambda := ca.Issue(t, agentapi.Lambda)
	server, err := certload.FromPEM(kc.CertPEM, kc.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := certload.FromPEM(lambda.CertPEM, lambda.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{Usage: certload.UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	var elsewhere atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: certload.ServerConfig(server, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	base := "https://" + ln.Addr().String()

	tests := []struct {
		name, serverName, path string
		status                 int
		err                    string
	}{
		{"verified by name, dialed by address", "keycloak.ca-a2a.local", "/ok", http.StatusOK, ""},
		{"redirect answered, not followed", "keycloak.ca-a2a.local", "/redirect", http.StatusFound, ""},
		{"another name", "evil.ca-a2a.local", "/ok", 0, "not valid for"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tokensource.ProviderClient(client, tc.serverName, tokensource.ProviderClientOptions{Timeout: 5 * time.Second})
			defer c.CloseIdleConnections()
			resp, err := c.Get(base + tc.path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}
