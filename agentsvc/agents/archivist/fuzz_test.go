package archivist_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/archivist"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// memStore records what reaches the store; the fuzz target checks that
// only valid documents get there.
type memStore struct {
	archive.Store
	last *agentapi.Document
}

func (m *memStore) Archive(_ context.Context, d *agentapi.Document) (*agentapi.Document, bool, error) {
	m.last = d
	return d, true, nil
}

// FuzzArchiveParams: archive_document params come from the network. Any
// input is either refused with -32602 or yields a document that satisfies
// the invariants the store relies on.
func FuzzArchiveParams(f *testing.F) {
	f.Add([]byte(archivetest.Doc("doc-1", "a.pdf", "pdf", 90, true)))
	f.Add([]byte(`{"document_id":"d","s3_key":"k","status":"failed","stage":"extraction","error":"x"}`))
	f.Add([]byte(`{"document_id":"d","s3_key":"k","document_type":"csv","validation":{"score":1e2,"passed":false}}`))
	f.Add([]byte(`{"document_id":"d","s3_key":"k","document_type":"pdf","extracted_data":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"document_id":"d","s3_key":"k\u0000","status":"failed","error":"a\u0000b"}`))
	f.Fuzz(func(t *testing.T, params []byte) {
		st := &memStore{}
		var archive func(context.Context, json.RawMessage) (any, error)
		for _, m := range archivist.New(st).Methods() {
			if m.Name == "archive_document" {
				archive = m.Handler
			}
		}
		_, err := archive(t.Context(), params)
		if err != nil {
			if jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
				t.Fatalf("code %d: %v", jsonrpc.CodeOf(err), err)
			}
			return
		}
		d := st.last
		if d == nil || d.DocumentID == "" || d.S3Key == "" || !agentapi.ValidStatus(d.Status) {
			t.Fatalf("invalid document stored: %+v", d)
		}
		for _, raw := range [][]byte{d.ExtractedData, d.Validation} {
			var obj map[string]any
			if raw != nil && (json.Unmarshal(raw, &obj) != nil || obj == nil) {
				t.Fatalf("non-object stored: %s", raw)
			}
		}
		// PostgreSQL text cannot hold NUL: a document that reached the
		// store with one would fail there, and differently than in SQLite.
		if strings.ContainsRune(d.S3Key+d.Bucket+d.FileName+d.Error+d.Stage+d.DocumentType+d.SHA256+d.DocumentID, 0) {
			t.Fatalf("NUL stored: %+v", d)
		}
		if d.Score != nil && (*d.Score < 0 || *d.Score > 100) {
			t.Fatalf("score %d", *d.Score)
		}
	})
}
