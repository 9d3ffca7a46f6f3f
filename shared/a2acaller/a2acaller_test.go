package a2acaller_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/ca-a2a/ca-a2a/internal/testutil/pki"
	"github.com/ca-a2a/ca-a2a/shared/a2acaller"
	"github.com/ca-a2a/ca-a2a/shared/a2askill"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type staticTokens struct {
	tok string
	err error
}

func (s staticTokens) Token() (*oauth2.Token, error) {
	if s.err != nil {
		return nil, s.err
	}
	return &oauth2.Token{AccessToken: s.tok}, nil
}

// agent is a TLS server with the orchestrator's certificate serving card
// (where {URL} becomes its own name-based URL) and answering every
// message/send with a completed task; it records the Authorization headers.
type agent struct {
	base  string
	mu    sync.Mutex
	auths []string
}

func serve(t *testing.T, ca *pki.CA, serverName, card string) *agent {
	t.Helper()
	leaf := ca.Issue(t, serverName)
	src, err := certload.FromPEM(leaf.CertPEM, leaf.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{base: "https://orchestrator.ca-a2a.local:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)}
	card = strings.ReplaceAll(card, "{URL}", a.base)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/agent-card.json", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, card) })
	mux.HandleFunc("POST /message", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.auths = append(a.auths, r.Header.Get("Authorization"))
		a.mu.Unlock()
		var req struct {
			ID     string
			Params json.RawMessage
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &req)
		call, err := a2askill.ParseSend(req.Params)
		if err != nil {
			t.Errorf("server: %v", err)
			return
		}
		task, _ := a2askill.Completed(call, json.RawMessage(`{"ok":true}`))
		out, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": task})
		w.Write(out)
	})
	srv := &http.Server{Handler: mux, TLSConfig: certload.ServerConfig(src, agentapi.AuthorizeAny(), certload.ServerOptions{RequireClientCert: true})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close(); <-done })
	return a
}

const goodCard = `{"name":"orchestrator","url":"{URL}/message","preferredTransport":"JSONRPC","protocolVersion":"0.3.0",
 "capabilities":{},"defaultInputModes":[],"defaultOutputModes":[],"skills":[],"description":"","version":"1",
 "securitySchemes":{"mtls":{"type":"mutualTLS"},"oauth2":{"type":"oauth2","flows":{"clientCredentials":{"tokenUrl":"https://keycloak.ca-a2a.local:1/t","scopes":{}}}}},
 "security":[{"mtls":[],"oauth2":[]}]}`

func TestDial(t *testing.T) {
	ca := pki.NewCA(t, "CA")
	lambda := ca.Issue(t, "lambda")
	src, err := certload.FromPEM(lambda.CertPEM, lambda.KeyPEM, ca.PEM, certload.Origin{}, certload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(tokens a2acaller.TokenSource) a2acaller.Config {
		return a2acaller.Config{Certificate: src, Tokens: tokens, Connect: "127.0.0.1"}
	}

	t.Run("a call carries the bound token", func(t *testing.T) {
		srv := serve(t, ca, "orchestrator", goodCard)
		a, err := a2acaller.Dial(t.Context(), cfg(staticTokens{tok: "tok-1"}), srv.base)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		msg, _ := a2askill.Message("list_skills", nil)
		res, err := a.Client.SendMessage(t.Context(), &a2a.MessageSendParams{Message: msg})
		if err != nil {
			t.Fatal(err)
		}
		if task := res.(*a2a.Task); a2askill.Result(task, nil) != nil || a.Name != "orchestrator" {
			t.Fatalf("task %+v", task)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.auths) != 1 || srv.auths[0] != "Bearer tok-1" {
			t.Fatalf("Authorization headers %q", srv.auths)
		}
	})
	t.Run("a token failure fails the call, with its cause", func(t *testing.T) {
		srv := serve(t, ca, "orchestrator", goodCard)
		a, err := a2acaller.Dial(t.Context(), cfg(staticTokens{err: errors.New("idp down")}), srv.base)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		msg, _ := a2askill.Message("list_skills", nil)
		if _, err := a.Client.SendMessage(t.Context(), &a2a.MessageSendParams{Message: msg}); err == nil || !strings.Contains(err.Error(), "idp down") {
			t.Fatalf("err %v", err)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.auths) != 0 {
			t.Fatal("the call was sent without a token")
		}
	})

	refusals := []struct {
		name, serverName, card, url string
		tokens                      a2acaller.TokenSource
		want                        error
		wantText                    string
	}{
		{"not an agent URL", "orchestrator", goodCard, "https://example.com:1", staticTokens{}, a2acaller.ErrNotAgentURL, ""},
		{"plain http", "orchestrator", goodCard, "http://orchestrator.ca-a2a.local:1", staticTokens{}, a2acaller.ErrNotAgentURL, ""},
		{"a card whose url is another host", "orchestrator", strings.Replace(goodCard, "{URL}/message", "https://archivist.ca-a2a.local:8004/message", 1), "", staticTokens{}, a2acaller.ErrCardURL, ""},
		{"a card without a token URL", "orchestrator", strings.Replace(goodCard, "https://keycloak.ca-a2a.local:1/t", "http://keycloak/t", 1), "", nil, a2acaller.ErrNoTokenURL, ""},
		{"a server that is not the agent named", "validator", goodCard, "", staticTokens{}, nil, "peer identity not authorized"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, ca, tc.serverName, tc.card)
			url := tc.url
			if url == "" {
				url = srv.base
			}
			a, err := a2acaller.Dial(t.Context(), cfg(tc.tokens), url)
			if err == nil {
				a.Close()
				t.Fatal("Dial succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) || tc.wantText != "" && !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("err %v", err)
			}
		})
	}
}
