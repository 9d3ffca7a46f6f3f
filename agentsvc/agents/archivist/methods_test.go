package archivist_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/archivist"
	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

func TestArchiveConcurrentSameID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "archive.db")
	a := archivetest.Open(t, path, nil)
	b := archivetest.Open(t, path, nil) // a second pool on the same file: another task or process
	var created atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		ag := a
		if i%2 == 1 {
			ag = b
		}
		wg.Go(func() {
			res, err := ag.Call("archive_document", archivetest.Doc("doc-1", "a.pdf", "pdf", 90, true))
			if err != nil {
				t.Error(err)
				return
			}
			if res["created"] == true {
				created.Add(1)
			}
			if res["status"] != "archived" || res["document_id"] != "doc-1" {
				t.Errorf("result %v", res)
			}
		})
	}
	wg.Wait()
	if n := created.Load(); n != 1 {
		t.Fatalf("%d calls report created:true, want exactly 1", n)
	}
	if n := a.Total(); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}

func TestArchiveIdempotentKeepsFirstRow(t *testing.T) {
	a := archivetest.New(t)
	first := a.Must("archive_document", archivetest.Doc("doc-1", "a.pdf", "pdf", 90, true))
	if first["created"] != true || first["status"] != "archived" {
		t.Fatalf("first: %v", first)
	}
	// A redelivery with other content must not overwrite the row.
	again := a.Must("archive_document", archivetest.Doc("doc-1", "b.csv", "csv", 10, false))
	if again["created"] != false || again["status"] != "archived" {
		t.Fatalf("second: %v", again)
	}
	got := a.Must("get_document", `{"document_id":"doc-1"}`)
	if got["file_name"] != "a.pdf" || got["score"].(float64) != 90 {
		t.Fatalf("stored row changed: %v", got)
	}
	// After a status change, a redelivery reports the current status.
	a.Must("update_document_status", `{"document_id":"doc-1","status":"rejected"}`)
	if res := a.Must("archive_document", archivetest.Doc("doc-1", "a.pdf", "pdf", 90, true)); res["status"] != "rejected" || res["created"] != false {
		t.Fatalf("after update: %v", res)
	}
}

func TestArchiveStatusAndRecord(t *testing.T) {
	tests := []struct {
		name, params string
		status       string
		check        func(t *testing.T, got map[string]any)
	}{
		{"passed defaults to archived", archivetest.Doc("d", "a.pdf", "pdf", 80, true), "archived", nil},
		{"not passed defaults to rejected", archivetest.Doc("d", "a.csv", "csv", 30, false), "rejected", nil},
		{"no validation is rejected", `{"document_id":"d","s3_key":"k","document_type":"pdf"}`, "rejected", func(t *testing.T, got map[string]any) {
			if got["score"] != nil || got["passed"] != nil || got["validation"] != nil || got["extracted_data"] != nil {
				t.Errorf("absent values should be null: %v", got)
			}
		}},
		{"null objects are absent", `{"document_id":"d","s3_key":"k","document_type":"pdf","extracted_data":null,"validation":null}`, "rejected", nil},
		{"explicit status wins", archivetest.Doc("d", "a.pdf", "pdf", 30, false, "status", "archived"), "archived", nil},
		{"failed without type, with stage and error", `{"document_id":"d","s3_key":"k","status":"failed","stage":"extraction","error":"not a PDF"}`, "failed", func(t *testing.T, got map[string]any) {
			if got["stage"] != "extraction" || got["error"] != "not a PDF" || got["document_type"] != "" {
				t.Errorf("failed record: %v", got)
			}
		}},
		{"full record", archivetest.Doc("d", "a.pdf", "pdf", 75, true), "archived", func(t *testing.T, got map[string]any) {
			for _, k := range []string{"document_id", "s3_key", "bucket", "document_type", "file_name", "sha256", "status", "score", "passed", "extracted_data", "validation", "created_at", "updated_at"} {
				if _, ok := got[k]; !ok {
					t.Errorf("record lacks %s: %v", k, got)
				}
			}
			if got["bucket"] != "docs" || got["s3_key"] != "incoming/a.pdf" || got["passed"] != true || got["score"].(float64) != 75 {
				t.Errorf("record: %v", got)
			}
			if pages := got["extracted_data"].(map[string]any)["pages"].([]any); pages[0] != "hello" {
				t.Errorf("extracted_data: %v", got["extracted_data"])
			}
			if _, err := time.Parse(time.RFC3339, got["created_at"].(string)); err != nil {
				t.Errorf("created_at: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := archivetest.New(t)
			res := a.Must("archive_document", tc.params)
			if res["status"] != tc.status || res["created"] != true {
				t.Fatalf("archive: %v, want status %s", res, tc.status)
			}
			got := a.Must("get_document", `{"document_id":"d"}`)
			if got["status"] != tc.status {
				t.Fatalf("stored status %v", got["status"])
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

func TestGetMissing(t *testing.T) {
	a := archivetest.New(t)
	_, err := a.Call("get_document", `{"document_id":"nope"}`)
	archivetest.WantCode(t, err, agentapi.CodeNotFound)
	_, err = a.Call("update_document_status", `{"document_id":"nope","status":"archived"}`)
	archivetest.WantCode(t, err, agentapi.CodeNotFound)
}

func TestTransitions(t *testing.T) {
	allowed := map[[2]string]bool{
		{"failed", "archived"}: true, {"failed", "rejected"}: true,
		{"archived", "rejected"}: true, {"rejected", "archived"}: true,
	}
	statuses := []string{"archived", "rejected", "failed"}
	a := archivetest.New(t)
	for _, from := range statuses {
		for _, to := range statuses {
			t.Run(from+"->"+to, func(t *testing.T) {
				id := from + "-" + to
				params := fmt.Sprintf(`{"document_id":%q,"s3_key":"k","document_type":"pdf","status":%q}`, id, from)
				a.Must("archive_document", params)
				res, err := a.Call("update_document_status", fmt.Sprintf(`{"document_id":%q,"status":%q,"reason":"review"}`, id, to))
				if allowed[[2]string{from, to}] {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if res["status"] != to || res["previous_status"] != from || res["document_id"] != id {
						t.Fatalf("result %v", res)
					}
				} else {
					archivetest.WantCode(t, err, agentapi.CodeInvalidTransition)
					if !strings.Contains(err.Error(), from+" -> "+to) {
						t.Errorf("message %q does not name the transition", err)
					}
				}
				want := from
				if allowed[[2]string{from, to}] {
					want = to
				}
				if got := a.Must("get_document", fmt.Sprintf(`{"document_id":%q}`, id)); got["status"] != want {
					t.Fatalf("status %v, want %s", got["status"], want)
				}
			})
		}
	}
	t.Run("unknown status", func(t *testing.T) {
		_, err := a.Call("update_document_status", `{"document_id":"failed-failed","status":"deleted"}`)
		archivetest.WantCode(t, err, jsonrpc.CodeInvalidParams)
	})
	t.Run("store refuses an unknown status too", func(t *testing.T) {
		_, err := a.Store.UpdateStatus(t.Context(), "failed-failed", "deleted", "")
		if jsonrpc.CodeOf(err) == agentapi.CodeInvalidTransition || err == nil {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("review round trip updates updated_at", func(t *testing.T) {
		before := a.Must("get_document", `{"document_id":"archived-rejected"}`)
		a.Must("update_document_status", `{"document_id":"archived-rejected","status":"archived","reason":"manual review"}`)
		after := a.Must("get_document", `{"document_id":"archived-rejected"}`)
		if after["status"] != "archived" || after["created_at"] != before["created_at"] || after["updated_at"].(string) < before["updated_at"].(string) {
			t.Fatalf("before %v after %v", before, after)
		}
	})
}

func TestConcurrentUpdatesOneWins(t *testing.T) {
	a := archivetest.New(t)
	a.Must("archive_document", archivetest.Doc("d", "a.pdf", "pdf", 90, true))
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			_, err := a.Call("update_document_status", `{"document_id":"d","status":"rejected"}`)
			switch jsonrpc.CodeOf(err) {
			case agentapi.CodeInvalidTransition:
				refused.Add(1)
			default:
				if err != nil {
					t.Error(err)
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || refused.Load() != 9 {
		t.Fatalf("%d succeeded, %d refused; want 1 and 9", ok.Load(), refused.Load())
	}
}

func TestSearchDefaultLimit(t *testing.T) {
	a := archivetest.New(t)
	for i := range archivist.DefaultLimit + 5 {
		a.Must("archive_document", archivetest.Doc(fmt.Sprintf("d%03d", i), "a.pdf", "pdf", 90, true))
	}
	res := a.Must("search_documents", `{}`)
	if n := len(res["documents"].([]any)); n != archivist.DefaultLimit || int(res["total"].(float64)) != archivist.DefaultLimit+5 {
		t.Fatalf("%d documents, total %v", n, res["total"])
	}
}

func TestStats(t *testing.T) {
	a := archivetest.New(t)
	empty := a.Must("get_document_stats", `{}`)
	if empty["total"].(float64) != 0 || empty["average_score"] != nil || len(empty["by_status"].(map[string]any)) != 0 {
		t.Fatalf("empty: %v", empty)
	}
	for _, p := range []string{
		archivetest.Doc("a", "a.pdf", "pdf", 90, true),
		archivetest.Doc("b", "b.pdf", "pdf", 40, false),
		archivetest.Doc("c", "c.csv", "csv", 80, true),
		`{"document_id":"f","s3_key":"broken","status":"failed","stage":"extraction"}`,
	} {
		a.Must("archive_document", p)
	}
	got := a.Must("get_document_stats", ``)
	want := `{"average_score":70,"by_status":{"archived":2,"failed":1,"rejected":1},"by_type":{"csv":1,"pdf":2,"unknown":1},"total":4}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Fatalf("stats %s\nwant %s", b, want)
	}
	_, err := a.Call("get_document_stats", `{"x":1}`)
	archivetest.WantCode(t, err, jsonrpc.CodeInvalidParams)
}

func TestInvalidParams(t *testing.T) {
	base := func(kv ...string) string {
		m := map[string]any{"document_id": "d1", "s3_key": "k", "document_type": "pdf"}
		for i := 0; i+1 < len(kv); i += 2 {
			var v any
			if err := json.Unmarshal([]byte(kv[i+1]), &v); err != nil {
				panic(err)
			}
			m[kv[i]] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name, method, params string
	}{
		{"unknown field", "archive_document", base("drop_table", "1")},
		{"not an object", "archive_document", `[1,2]`},
		{"trailing data", "archive_document", base() + `{}`},
		{"empty id", "archive_document", base("document_id", `""`)},
		{"id with slash", "archive_document", base("document_id", `"a/../b"`)},
		{"id with space", "archive_document", base("document_id", `"a b"`)},
		{"id with unicode", "archive_document", base("document_id", `"dоc"`)},
		{"id too long", "archive_document", base("document_id", `"`+strings.Repeat("a", 129)+`"`)},
		{"id not a string", "archive_document", base("document_id", `1`)},
		{"missing s3_key", "archive_document", base("s3_key", `""`)},
		{"s3_key too long", "archive_document", base("s3_key", `"`+strings.Repeat("k", 1025)+`"`)},
		{"bad type", "archive_document", base("document_type", `"docx"`)},
		{"empty type when archived", "archive_document", base("document_type", `""`, "status", `"archived"`)},
		{"bad status", "archive_document", base("status", `"deleted"`)},
		{"extracted_data array", "archive_document", base("extracted_data", `[1]`)},
		{"extracted_data string", "archive_document", base("extracted_data", `"text"`)},
		{"validation string", "archive_document", base("validation", `"ok"`)},
		{"validation number", "archive_document", base("validation", `3`)},
		{"score above 100", "archive_document", base("validation", `{"score":101,"passed":true}`)},
		{"score negative", "archive_document", base("validation", `{"score":-1}`)},
		{"score fractional", "archive_document", base("validation", `{"score":50.5}`)},
		{"score a string", "archive_document", base("validation", `{"score":"90"}`)},
		{"passed a string", "archive_document", base("validation", `{"passed":"yes"}`)},
		{"bad sha256", "archive_document", base("sha256", `"xyz"`)},
		{"stage on archived", "archive_document", base("status", `"archived"`, "stage", `"extraction"`)},
		{"error on rejected", "archive_document", base("status", `"rejected"`, "error", `"x"`)},
		{"unknown stage", "archive_document", base("status", `"failed"`, "stage", `"upload"`)},
		{"get unknown field", "get_document", `{"document_id":"d1","x":1}`},
		{"get bad id", "get_document", `{"document_id":"d%"}`},
		{"get no id", "get_document", `{}`},
		{"update unknown field", "update_document_status", `{"document_id":"d1","status":"archived","by":"me"}`},
		{"update bad id", "update_document_status", `{"document_id":"../d","status":"archived"}`},
		{"update empty status", "update_document_status", `{"document_id":"d1","status":""}`},
		{"update long reason", "update_document_status", `{"document_id":"d1","status":"archived","reason":"` + strings.Repeat("r", 1025) + `"}`},
		{"search limit 0", "search_documents", `{"limit":0}`},
		{"search limit 501", "search_documents", `{"limit":501}`},
		{"search limit negative", "search_documents", `{"limit":-1}`},
		{"search offset negative", "search_documents", `{"offset":-1}`},
		{"search limit fractional", "search_documents", `{"limit":1.5}`},
		{"search bad status", "search_documents", `{"status":"x"}`},
		{"search bad type", "search_documents", `{"document_type":"exe"}`},
		{"search unknown field", "search_documents", `{"query":"x"}`},
	}
	a := archivetest.New(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Call(tc.method, tc.params)
			archivetest.WantCode(t, err, jsonrpc.CodeInvalidParams)
			if len(err.Error()) > 300 {
				t.Errorf("message echoes the input: %d bytes", len(err.Error()))
			}
		})
	}
	if n := a.Total(); n != 0 {
		t.Fatalf("refused calls wrote %d rows", n)
	}
	// Size is the HTTP layer's business (1 MiB bodies): a document that
	// fills a request is archived whole.
	ok := `{"document_id":"big","s3_key":"k","document_type":"pdf","extracted_data":{"x":"` + strings.Repeat("a", 1<<20-200) + `"}}`
	a.Must("archive_document", ok)
	if got := a.Must("get_document", `{"document_id":"big"}`); len(got["extracted_data"].(map[string]any)["x"].(string)) != 1<<20-200 {
		t.Fatal("large extracted_data not stored whole")
	}
}
