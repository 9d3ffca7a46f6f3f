package archivist_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/archivist"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// rawErrStore is a Store that fails with raw errors, as a careless
// implementation would.
type rawErrStore struct {
	archive.Store
	err error
}

func (s rawErrStore) Get(context.Context, string) (*agentapi.Document, error) { return nil, s.err }

// Whatever a Store returns, the client sees a generic -32002; the cause is
// logged once: by the Archivist when the store did not classify it, by the
// store when it did.
func TestUnclassifiedStoreErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantLogged bool
	}{
		{"raw error is logged by the archivist", errors.New("open /srv/secret/archive.db: disk I/O error"), true},
		{"classified error is not logged twice", fmt.Errorf("%w (get)", archive.ErrUnavailable), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncbuf.Buffer{}
			a := archivist.New(rawErrStore{err: tc.err}, archivist.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
			var get func(context.Context, []byte) (any, error)
			for _, m := range a.Methods() {
				if m.Name == "get_document" {
					get = func(ctx context.Context, p []byte) (any, error) { return m.Handler(ctx, p) }
				}
			}
			_, err := get(t.Context(), []byte(`{"document_id":"d1"}`))
			archivetest.WantCode(t, err, agentapi.CodeUnavailable)
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "disk") {
				t.Fatalf("client error leaks the cause: %v", err)
			}
			logged := strings.Contains(logs.String(), `"level":"ERROR"`)
			if logged != tc.wantLogged {
				t.Fatalf("logged %v, want %v: %s", logged, tc.wantLogged, logs)
			}
			if logged && (!strings.Contains(logs.String(), "disk I/O error") || !strings.Contains(logs.String(), `"method":"get_document"`)) {
				t.Fatalf("log lacks cause or method: %s", logs)
			}
		})
	}
}
