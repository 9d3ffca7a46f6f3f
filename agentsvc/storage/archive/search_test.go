package archive_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/archivist"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
)

// TestSearch: filters, literal matching and newest-first order (created_at,
// on a controlled clock) through search_documents.
func TestSearch(t *testing.T) {
	a := archivetest.New(t)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	archive.SetClock(a.Store, func() time.Time { clock = clock.Add(time.Second); return clock })
	for _, p := range []string{
		archivetest.Doc("a", "report_2026.pdf", "pdf", 90, true),
		archivetest.Doc("b", "report%2026.pdf", "pdf", 40, false),
		archivetest.Doc("c", "tx.csv", "csv", 80, true),
		archivetest.Doc("d", `back\slash.csv`, "csv", 20, false),
		archivetest.Doc("e", "reportX2026.pdf", "pdf", 85, true),
		`{"document_id":"f","s3_key":"broken.pdf","status":"failed","stage":"extraction","error":"bad"}`,
	} {
		a.Must("archive_document", p)
	}
	tests := []struct {
		params string
		ids    []string // in order
		total  int
	}{
		{`{}`, []string{"f", "e", "d", "c", "b", "a"}, 6},
		{`{"status":"archived"}`, []string{"e", "c", "a"}, 3},
		{`{"status":"failed"}`, []string{"f"}, 1},
		{`{"document_type":"pdf"}`, []string{"e", "b", "a"}, 3},
		{`{"document_type":"csv","status":"rejected"}`, []string{"d"}, 1},
		{`{"file_name":"_"}`, []string{"a"}, 1},  // a literal underscore, not "any one character"
		{`{"file_name":"%"}`, []string{"b"}, 1},  // a literal percent, not "anything"
		{`{"file_name":"\\"}`, []string{"d"}, 1}, // a literal backslash
		{`{"file_name":"report"}`, []string{"e", "b", "a"}, 3},
		{`{"file_name":"REPORT"}`, []string{"e", "b", "a"}, 3}, // LIKE is case-insensitive for ASCII
		{`{"file_name":"nothing"}`, []string{}, 0},
		{`{"limit":2}`, []string{"f", "e"}, 6},
		{`{"limit":2,"offset":2}`, []string{"d", "c"}, 6},
		{`{"limit":2,"offset":5}`, []string{"a"}, 6},
		{`{"offset":100}`, []string{}, 6},
		{`{"limit":500}`, []string{"f", "e", "d", "c", "b", "a"}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.params, func(t *testing.T) {
			res := a.Must("search_documents", tc.params)
			docs, ok := res["documents"].([]any)
			if !ok {
				t.Fatalf("documents is %T, want an array", res["documents"])
			}
			ids := []string{}
			for _, d := range docs {
				m := d.(map[string]any)
				if _, has := m["extracted_data"]; has {
					t.Fatal("a summary carries extracted_data")
				}
				ids = append(ids, m["document_id"].(string))
			}
			if strings.Join(ids, ",") != strings.Join(tc.ids, ",") || int(res["total"].(float64)) != tc.total {
				t.Fatalf("ids %v total %v, want %v total %d", ids, res["total"], tc.ids, tc.total)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		res := a.Must("search_documents", `{}`)
		if res["limit"].(float64) != archivist.DefaultLimit || res["offset"].(float64) != 0 {
			t.Fatalf("%v", res)
		}
	})
}
