package agentsvc_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/ca-a2a/ca-a2a/internal/samples"
	"github.com/ca-a2a/ca-a2a/internal/testutil/stack"
	"github.com/ca-a2a/ca-a2a/shared/a2acaller"
	"github.com/ca-a2a/ca-a2a/shared/a2askill"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// nameURL is agent's URL as an A2A client is given it: its DNS name and
// the port the stack serves it on (the client connects to 127.0.0.1).
func nameURL(t *testing.T, s *stack.Stack, agent string) string {
	t.Helper()
	u, err := url.Parse(s.URLs[agent])
	if err != nil {
		t.Fatal(err)
	}
	return "https://" + agentapi.DNSName(agent) + ":" + u.Port()
}

// dialA2A resolves agent's card as identity and returns a2a-go's client,
// configured from the card, the identity's certificate and, when tokens is
// nil, a token source at the card's token URL.
func dialA2A(t *testing.T, s *stack.Stack, identity, agent string, tokens a2acaller.TokenSource) *a2acaller.Agent {
	t.Helper()
	cert, key, ca := s.Leaf(identity)
	src, closeFn, err := certload.Load(certload.Config{CertPath: cert, KeyPath: key, CAPath: ca}, certload.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	a, err := a2acaller.Dial(t.Context(), a2acaller.Config{Certificate: src, Tokens: tokens, Connect: "127.0.0.1"}, nameURL(t, s, agent))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func send(t *testing.T, a *a2acaller.Agent, skill string, params any) (*a2a.Task, error) {
	t.Helper()
	msg, err := a2askill.Message(skill, params)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Client.SendMessage(t.Context(), &a2a.MessageSendParams{Message: msg})
	if err != nil {
		return nil, err
	}
	task, ok := res.(*a2a.Task)
	if !ok {
		t.Fatalf("message/send answered a %T", res)
	}
	return task, nil
}

// TestA2AEndToEnd: a standard A2A client (a2a-go), configured only from the
// agent card plus a certificate and a bound token, calls real agents over
// mTLS, and every rule of the seed's methods holds for message/send.
func TestA2AEndToEnd(t *testing.T) {
	s := stack.Start(t)
	s.PutDocument(t, "incoming/invoice.pdf", samples.Invoice())
	s.PutDocument(t, "incoming/notified.csv", []byte("id,amount\n1,10\n"))
	s.PutDocument(t, "incoming/refused.csv", []byte("id,amount\n2,20\n"))
	lambda := dialA2A(t, s, agentapi.Lambda, agentapi.Orchestrator, nil)
	lambdaSeed := newCaller(t, s, agentapi.Lambda)

	t.Run("card", func(t *testing.T) {
		c := lambda.Card
		idp, _ := url.Parse(s.IdP.TokenURL)
		tokenURL := "https://keycloak.ca-a2a.local:" + idp.Port() + "/realms/ca-a2a/protocol/openid-connect/token"
		oauth, _ := c.SecuritySchemes["oauth2"].(a2a.OAuth2SecurityScheme)
		_, mtls := c.SecuritySchemes["mtls"].(a2a.MutualTLSSecurityScheme)
		if c.Name != "orchestrator" || c.URL != nameURL(t, s, agentapi.Orchestrator)+"/message" || c.ProtocolVersion != "0.3.0" ||
			c.PreferredTransport != a2a.TransportProtocolJSONRPC || c.Capabilities.Streaming || !mtls ||
			oauth.Flows.ClientCredentials == nil || oauth.Flows.ClientCredentials.TokenURL != tokenURL ||
			len(c.Security) != 1 || len(c.Security[0]) != 2 {
			t.Fatalf("card %+v", c)
		}
	})

	var archived *a2a.Task
	t.Run("message/send process_document: archived, task completed", func(t *testing.T) {
		task, err := send(t, lambda, agentapi.MethodProcessDocument, agentapi.ProcessDocumentParams{S3Key: "incoming/invoice.pdf"})
		if err != nil {
			t.Fatal(err)
		}
		var res agentapi.ProcessResult
		if err := a2askill.Result(task, &res); err != nil || task.Status.State != a2a.TaskStateCompleted || res.Status != agentapi.StatusArchived {
			t.Fatalf("task %s: %v %+v", task.Status.State, err, res)
		}
		var status map[string]any
		if err := lambdaSeed.client.Call(t.Context(), agentapi.Orchestrator, agentapi.MethodGetDocumentStatus,
			map[string]string{"document_id": res.DocumentID}, &status); err != nil || status["status"] != agentapi.StatusArchived {
			t.Fatalf("document %s: %v %v", res.DocumentID, status, err)
		}
		archived = task
	})
	if archived == nil {
		t.FailNow()
	}

	t.Run("tasks/get: the creator gets the task, another caller does not", func(t *testing.T) {
		got, err := lambda.Client.GetTask(t.Context(), &a2a.TaskQueryParams{ID: archived.ID})
		if err != nil || got.ID != archived.ID || got.Status.State != a2a.TaskStateCompleted || len(got.Artifacts) != 1 {
			t.Fatalf("creator: %v %+v", err, got)
		}
		// The orchestrator's own identity (the other client of the
		// identity provider) may call tasks/get, with its own certificate
		// and token: it finds nothing of the Lambda's.
		other := dialA2A(t, s, agentapi.Orchestrator, agentapi.Orchestrator, nil)
		if _, err := other.Client.GetTask(t.Context(), &a2a.TaskQueryParams{ID: archived.ID}); !errors.Is(err, a2a.ErrTaskNotFound) {
			t.Fatalf("another caller: %v", err)
		}
	})

	t.Run("the Lambda's token with the extractor's certificate: 401", func(t *testing.T) {
		thief := dialA2A(t, s, agentapi.Extractor, agentapi.Orchestrator, lambdaSeed.tokens)
		_, err := send(t, thief, agentapi.MethodProcessDocument, agentapi.ProcessDocumentParams{S3Key: "incoming/invoice.pdf"})
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("want 401, got %v", err)
		}
	})

	t.Run("a skill the caller may not call: 403, -32011", func(t *testing.T) {
		extractor := dialA2A(t, s, agentapi.Lambda, agentapi.Extractor, nil)
		_, err := send(t, extractor, agentapi.MethodExtractDocument, map[string]string{"s3_key": "incoming/invoice.pdf"})
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("want 403, got %v", err)
		}
		status, body := postA2A(t, s, agentapi.Lambda, agentapi.Extractor, sendBody(`1`, agentapi.MethodExtractDocument, `{"s3_key":"incoming/invoice.pdf"}`))
		if status != 403 || !strings.Contains(body, `"code":-32011`) || !strings.Contains(body, `may not call extract_document`) {
			t.Fatalf("%d %s", status, body)
		}
	})

	t.Run("unknown skill: -32601", func(t *testing.T) {
		if _, err := send(t, lambda, "drop_tables", nil); !errors.Is(err, a2a.ErrMethodNotFound) {
			t.Fatalf("want method not found, got %v", err)
		}
	})

	t.Run("text only: -32602", func(t *testing.T) {
		msg := a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: "please process incoming/invoice.pdf"})
		if _, err := lambda.Client.SendMessage(t.Context(), &a2a.MessageSendParams{Message: msg}); !errors.Is(err, a2a.ErrInvalidParams) {
			t.Fatalf("want invalid params, got %v", err)
		}
		_, body := postA2A(t, s, agentapi.Lambda, agentapi.Orchestrator,
			`{"jsonrpc":"2.0","method":"message/send","id":1,"params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}]}}}`)
		if !strings.Contains(body, `"code":-32602`) || !strings.Contains(body, "skills: discover_agents, get_document_status, get_health, list_skills, process_batch, process_document") {
			t.Fatalf("%s", body)
		}
	})

	t.Run("streaming is not offered: -32601", func(t *testing.T) {
		_, body := postA2A(t, s, agentapi.Lambda, agentapi.Orchestrator, strings.Replace(sendBody(`1`, agentapi.MethodListSkills, `{}`), "message/send", "message/stream", 1))
		if !strings.Contains(body, `"code":-32601`) {
			t.Fatalf("%s", body)
		}
	})

	t.Run("a batch mixing allowed and forbidden skills: per element, 200", func(t *testing.T) {
		status, body := postA2A(t, s, agentapi.Lambda, agentapi.Archivist, "["+
			sendBody(`1`, agentapi.MethodGetDocumentStats, `{}`)+","+
			sendBody(`2`, agentapi.MethodArchiveDocument, `{"document_id":"doc-x"}`)+"]")
		var answers []struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{ Code int }
		}
		if err := json.Unmarshal([]byte(body), &answers); status != 200 || err != nil || len(answers) != 2 {
			t.Fatalf("%d %v %s", status, err, body)
		}
		if answers[0].ID != 1 || !strings.Contains(string(answers[0].Result), `"state":"completed"`) || answers[1].ID != 2 || answers[1].Error == nil || answers[1].Error.Code != -32011 {
			t.Fatalf("%s", body)
		}
	})

	t.Run("notifications: 204, and the skill still authorized", func(t *testing.T) {
		count := func(name string) int {
			var found struct{ Total int }
			if err := lambdaSeed.client.Call(t.Context(), agentapi.Archivist, agentapi.MethodSearchDocuments, map[string]string{"file_name": name}, &found); err != nil {
				t.Fatal(err)
			}
			return found.Total
		}
		if status, body := postA2A(t, s, agentapi.Lambda, agentapi.Orchestrator, sendBody(``, agentapi.MethodProcessDocument, `{"s3_key":"incoming/notified.csv"}`)); status != 204 || body != "" {
			t.Fatalf("allowed notification: %d %s", status, body)
		}
		if n := count("notified"); n != 1 {
			t.Fatalf("the allowed notification archived %d documents", n)
		}
		// The orchestrator's identity may not call process_document: its
		// notification gets the same 204 and does nothing.
		if status, _ := postA2A(t, s, agentapi.Orchestrator, agentapi.Orchestrator, sendBody(``, agentapi.MethodProcessDocument, `{"s3_key":"incoming/refused.csv"}`)); status != 204 {
			t.Fatalf("forbidden notification: %d", status)
		}
		if n := count("refused"); n != 0 {
			t.Fatalf("a forbidden notification archived %d documents", n)
		}
		logged := false
		for _, line := range strings.Split(s.Log(agentapi.Orchestrator), "\n") {
			logged = logged || strings.Contains(line, `"call denied by policy"`) && strings.Contains(line, `"caller":"orchestrator"`) &&
				strings.Contains(line, `"method":"message/send"`) && strings.Contains(line, `"skill":"process_document"`)
		}
		if !logged {
			t.Fatal("the refused notification was not logged with its skill")
		}
	})

	t.Run("tasks/get after the count bound: not found", func(t *testing.T) {
		// 1000 more tasks (the bound) push the first one out.
		for b := range 10 {
			var elems []string
			for i := range 100 {
				elems = append(elems, sendBody(fmt.Sprint(b*100+i+1), agentapi.MethodGetHealth, `{}`))
			}
			if status, body := postA2A(t, s, agentapi.Lambda, agentapi.Orchestrator, "["+strings.Join(elems, ",")+"]"); status != 200 || strings.Count(body, `"state":"completed"`) != 100 {
				t.Fatalf("batch %d: %d %.300s", b, status, body)
			}
		}
		if _, err := lambda.Client.GetTask(t.Context(), &a2a.TaskQueryParams{ID: archived.ID}); !errors.Is(err, a2a.ErrTaskNotFound) {
			t.Fatalf("want task not found, got %v", err)
		}
	})
}

// sendBody is a message/send request (a notification when id is empty)
// calling skill with params.
func sendBody(id, skill, params string) string {
	idPart := ""
	if id != "" {
		idPart = `,"id":` + id
	}
	return `{"jsonrpc":"2.0","method":"message/send"` + idPart + `,"params":{"message":{"kind":"message","messageId":"` + fmt.Sprint(time.Now().UnixNano()) +
		`","role":"user","parts":[{"kind":"data","data":{"skill":"` + skill + `","params":` + params + `}}]}}}`
}

// postA2A posts body to agent's /message as identity, with identity's
// bound token.
func postA2A(t *testing.T, s *stack.Stack, identity, agent, body string) (int, string) {
	t.Helper()
	tok, err := newCaller(t, s, identity).tokens.Token()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URLs[agent]+"/message", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := rawClient(t, s, identity, agent).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
