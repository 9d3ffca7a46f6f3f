package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/metrics"
	"github.com/ca-a2a/ca-a2a/dev/localrun"
	"github.com/ca-a2a/ca-a2a/internal/samples"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/agentclient"
	"github.com/ca-a2a/ca-a2a/shared/tokensource"
)

// demo tells the story of `make demo` (docs/operations.md) and fails when any step does
// not behave as expected. Everything it starts is stopped at the end, also
// on Ctrl-C.
func demo(ctx context.Context, l localrun.Layout) error {
	var g localrun.Group
	defer func() {
		g.Stop()
		fmt.Println("✓ stopped every process the demo started")
	}()
	s := newSteps()
	// Refuse before touching any state when another run holds the ports.
	if err := l.CheckPorts(); err != nil {
		return fmt.Errorf("%w: is \"make run-agents\" running? stop it first", err)
	}
	// A clean archive each run, so the output tells this run's story.
	_ = os.RemoveAll(filepath.Join(l.StateDir, "archive"))
	if err := up(ctx, l, &g, s); err != nil {
		return err
	}
	// Every file in events/ points at one of these; "with space.csv" shows
	// that URL-encoded keys in S3 notifications are decoded.
	docs := map[string][]byte{"incoming/invoice.pdf": samples.Invoice(), "incoming/transactions.csv": samples.TransactionsCSV(),
		"incoming/with space.csv": samples.TransactionsCSV()}
	if err := s.do("sample documents", func() (string, error) {
		var names []string
		for k, v := range docs {
			p := filepath.Join(l.Documents(), filepath.FromSlash(k))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return "", err
			}
			if err := os.WriteFile(p, v, 0o600); err != nil {
				return "", err
			}
			names = append(names, k)
		}
		slices.Sort(names)
		return strings.Join(names, ", "), nil
	}); err != nil {
		return err
	}

	if err := s.do("lambda: S3 event (events/s3-put.json)", func() (string, error) {
		answer, err := invokeFile(ctx, l, "events/s3-put.json")
		if err != nil {
			return "", err
		}
		if strings.Contains(answer, "errorMessage") {
			return "", fmt.Errorf("handler failed: %s", answer)
		}
		return "2 objects processed, answer " + answer, nil
	}); err != nil {
		return err
	}

	if err := s.do("lambda: SQS batch with a poison message", func() (string, error) {
		answer, err := invokeFile(ctx, l, "events/sqs-mixed-with-poison.json")
		if err != nil {
			return "", err
		}
		var resp struct {
			BatchItemFailures []struct {
				ItemIdentifier string `json:"itemIdentifier"`
			} `json:"batchItemFailures"`
		}
		if err := json.Unmarshal([]byte(answer), &resp); err != nil {
			return "", fmt.Errorf("answer is not an SQS batch response: %s", answer)
		}
		var ids []string
		for _, f := range resp.BatchItemFailures {
			ids = append(ids, f.ItemIdentifier)
		}
		if strings.Join(ids, ",") != "poison-1,missing-1" {
			return "", fmt.Errorf("batchItemFailures = %v, want exactly [poison-1 missing-1]", ids)
		}
		return "4 messages, 2 processed; batchItemFailures = [poison-1 (not an S3 event), missing-1 (no such document)]", nil
	}); err != nil {
		return err
	}

	lambdaSrc, err := l.Source(agentapi.Lambda)
	if err != nil {
		return err
	}
	tokens, err := tokensource.New(tokensource.Config{TokenURL: l.TokenURL(), ClientID: agentapi.Lambda, Certificate: lambdaSrc, ServerName: agentapi.DNSName(agentapi.Keycloak)})
	if err != nil {
		return err
	}
	client, err := agentclient.New(agentclient.Config{Certificate: lambdaSrc, Tokens: tokens, Peers: map[string]string{agentapi.Archivist: localrun.AgentURL(agentapi.Archivist)}})
	if err != nil {
		return err
	}
	defer client.Close()
	if err := s.do("archived documents (search_documents)", func() (string, error) {
		var found agentapi.SearchResult
		if err := client.Call(ctx, agentapi.Archivist, agentapi.MethodSearchDocuments, agentapi.SearchParams{}, &found); err != nil {
			return "", err
		}
		if found.Total != 2 {
			return "", fmt.Errorf("%d documents archived, want 2 (each archived once, however often delivered)", found.Total)
		}
		var parts []string
		for _, d := range found.Documents {
			score := "-"
			if d.Score != nil {
				score = fmt.Sprint(*d.Score)
			}
			parts = append(parts, fmt.Sprintf("%s %s (score %s)", d.FileName, d.Status, score))
		}
		slices.Sort(parts)
		return strings.Join(parts, "; "), nil
	}); err != nil {
		return err
	}

	if err := s.do("attack: lambda's token, extractor's cert", func() (string, error) {
		tok, err := tokens.Token()
		if err != nil {
			return "", err
		}
		thief, err := l.Client(agentapi.Extractor, agentapi.Orchestrator)
		if err != nil {
			return "", err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, localrun.AgentURL(agentapi.Orchestrator)+"/message",
			strings.NewReader(`{"jsonrpc":"2.0","method":"process_document","params":{"s3_key":"incoming/invoice.pdf"},"id":1}`))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := thief.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "token is not bound to the presented certificate") {
			return "", errors.New("the stolen token was not refused: HTTP " + resp.Status + " " + string(body))
		}
		return `HTTP 401 "token is not bound to the presented certificate"`, nil
	}); err != nil {
		return err
	}

	// What an operator sees: the orchestrator counted the replay under its
	// reason code (README, Metrics).
	return s.do("refusals by reason (orchestrator /metrics)", func() (string, error) {
		scraper, err := l.Client(agentapi.Lambda, agentapi.Orchestrator)
		if err != nil {
			return "", err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, localrun.AgentURL(agentapi.Orchestrator)+"/metrics", nil)
		resp, err := scraper.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
		}
		byReason, err := metrics.Counts(resp.Body, "ca_a2a_auth_refusals_total", "reason")
		if err != nil {
			return "", err
		}
		var parts []string
		for _, r := range agentapi.Reasons() {
			if n := byReason[r]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %g", r, n))
			}
		}
		if byReason[agentapi.ReasonBindingMismatch] != 1 {
			return "", fmt.Errorf("binding_mismatch counted %g times, want 1 (refusals: %v)", byReason[agentapi.ReasonBindingMismatch], parts)
		}
		return strings.Join(parts, ", "), nil
	})
}

func invokeFile(ctx context.Context, l localrun.Layout, file string) (string, error) {
	event, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	answer, err := l.Invoke(ctx, event)
	return strings.TrimSpace(string(answer)), err
}
