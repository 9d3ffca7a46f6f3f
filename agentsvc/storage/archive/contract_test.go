package archive_test

// The contract suite: every test here runs the same cases on each engine
// (archivetest.ForEachEngine), through the archivist's JSON-RPC methods, so
// that SQLite and PostgreSQL give the same answers to the same calls.
// Engine-specific behaviour is in sqlite_test.go and postgres_test.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/archivist"
	"github.com/ca-a2a/ca-a2a/agentsvc/storage/archive"
	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/internal/testutil/syncbuf"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

type engine = archivetest.Engine

// fresh opens one store on a fresh database of e.
func fresh(t *testing.T, e engine) (*archivetest.Agent, *archivetest.DB) {
	t.Helper()
	db := e.NewDB(t)
	return db.Open(t, nil), db
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
		{"failed at validation, typed, with its data", `{"document_id":"d","s3_key":"k","document_type":"csv","status":"failed","stage":"validation","error":"-32012 body too large","extracted_data":{"rows":[]}}`, "failed", func(t *testing.T, got map[string]any) {
			if got["stage"] != "validation" || got["error"] != "-32012 body too large" || got["document_type"] != "csv" || got["extracted_data"] == nil {
				t.Errorf("failed record: %v", got)
			}
		}},
		{"unicode and quotes kept", `{"document_id":"d","s3_key":"incoming/fa'cture é 😀.pdf","file_name":"fa'cture é 😀.pdf","document_type":"pdf","extracted_data":{"text":"l'été\n\t\"ok\"","z":1,"a":2}}`, "rejected", func(t *testing.T, got map[string]any) {
			if got["file_name"] != "fa'cture é 😀.pdf" || got["extracted_data"].(map[string]any)["text"] != "l'été\n\t\"ok\"" {
				t.Errorf("record: %v", got)
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
			if _, err := time.Parse(time.RFC3339, got["created_at"].(string)); err != nil || len(got["created_at"].(string)) != len("2006-01-02T15:04:05.000000Z") {
				t.Errorf("created_at %q: %v", got["created_at"], err)
			}
		}},
	}
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				a, db := fresh(t, e)
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
				// The creation is the first entry of the document's history.
				if n := db.History(t, "d"); n != 1 {
					t.Fatalf("%d history rows after creation, want 1", n)
				}
				if n := db.Int(t, "SELECT COUNT(*) FROM status_history WHERE document_id = 'd' AND from_status = '' AND to_status = '"+tc.status+"'"); n != 1 {
					t.Fatalf("creation history row missing")
				}
			})
		}
	})
}

// The JSON objects come back byte for byte as stored (compacted), in both
// engines: neither reorders keys nor rewrites numbers.
func TestJSONKeptAsGiven(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		a, _ := fresh(t, e)
		a.Must("archive_document", `{"document_id":"d","s3_key":"k","document_type":"pdf","extracted_data":{"z":1e2,"a":[1, 2],"m":"\u00e9"},"validation":{"score":10,"passed":false,"issues":[]}}`)
		d, err := a.Store.Get(t.Context(), "d")
		if err != nil {
			t.Fatal(err)
		}
		if string(d.ExtractedData) != `{"z":1e2,"a":[1,2],"m":"\u00e9"}` || string(d.Validation) != `{"score":10,"passed":false,"issues":[]}` {
			t.Fatalf("extracted %s validation %s", d.ExtractedData, d.Validation)
		}
	})
}

func TestArchiveIdempotentKeepsFirstRow(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		a, db := fresh(t, e)
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
		if n := db.History(t, "doc-1"); n != 2 {
			t.Fatalf("%d history rows, want 2 (creation, one change)", n)
		}
	})
}

// Concurrent redeliveries of one document through two stores on the same
// database (two archivists): one row, one history entry, one created:true.
func TestArchiveConcurrentSameID(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		db := e.NewDB(t)
		agents := []*archivetest.Agent{db.Open(t, nil), db.Open(t, nil)}
		var created atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			ag := agents[i%2]
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
		if n := agents[1].Total(); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
		if n := db.History(t, "doc-1"); n != 1 {
			t.Fatalf("%d history rows, want 1", n)
		}
	})
}

func TestGetMissing(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		a, _ := fresh(t, e)
		_, err := a.Call("get_document", `{"document_id":"nope"}`)
		archivetest.WantCode(t, err, agentapi.CodeNotFound)
		_, err = a.Call("update_document_status", `{"document_id":"nope","status":"archived"}`)
		archivetest.WantCode(t, err, agentapi.CodeNotFound)
		if _, err := a.Store.Get(t.Context(), "nope"); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("store: %v", err)
		}
	})
}

func TestTransitions(t *testing.T) {
	allowed := map[[2]string]bool{
		{"failed", "archived"}: true, {"failed", "rejected"}: true,
		{"archived", "rejected"}: true, {"rejected", "archived"}: true,
	}
	statuses := []string{"archived", "rejected", "failed"}
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		a, db := fresh(t, e)
		for _, from := range statuses {
			for _, to := range statuses {
				t.Run(from+"->"+to, func(t *testing.T) {
					id := from + "-" + to
					params := fmt.Sprintf(`{"document_id":%q,"s3_key":"k","document_type":"pdf","status":%q}`, id, from)
					a.Must("archive_document", params)
					res, err := a.Call("update_document_status", fmt.Sprintf(`{"document_id":%q,"status":%q,"reason":"review"}`, id, to))
					ok := allowed[[2]string{from, to}]
					if ok {
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
						var rpc *jsonrpc.Error
						if !errors.As(err, &rpc) || rpc.Data == nil {
							t.Errorf("no data: %v", err)
						}
					}
					want, history := from, 1
					if ok {
						want, history = to, 2
					}
					if got := a.Must("get_document", fmt.Sprintf(`{"document_id":%q}`, id)); got["status"] != want {
						t.Fatalf("status %v, want %s", got["status"], want)
					}
					if n := db.History(t, id); n != history {
						t.Fatalf("%d history rows, want %d", n, history)
					}
					if ok && db.Int(t, "SELECT COUNT(*) FROM status_history WHERE document_id = '"+id+"' AND from_status = '"+from+"' AND to_status = '"+to+"' AND reason = 'review'") != 1 {
						t.Fatal("the change is not in the history with its reason")
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
			if !errors.Is(err, archive.ErrUnknownStatus) {
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
	})
}

// Concurrent changes of one document through two stores: one wins, the
// others see the status it left and are refused; one history entry.
func TestConcurrentUpdatesOneWins(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		db := e.NewDB(t)
		agents := []*archivetest.Agent{db.Open(t, nil), db.Open(t, nil)}
		agents[0].Must("archive_document", archivetest.Doc("d", "a.pdf", "pdf", 90, true))
		var ok, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				_, err := agents[i%2].Call("update_document_status", `{"document_id":"d","status":"rejected"}`)
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
		if n := db.History(t, "d"); n != 2 {
			t.Fatalf("%d history rows, want 2", n)
		}
	})
}

// TestSearch: filters, literal matching and newest-first order (created_at,
// on a controlled clock) through search_documents.
func TestSearch(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		a, _ := fresh(t, e)
		clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		archive.SetClock(a.Store, func() time.Time { clock = clock.Add(time.Second); return clock })
		for _, p := range []string{
			archivetest.Doc("a", "report_2026.pdf", "pdf", 90, true),
			archivetest.Doc("b", "report%2026.pdf", "pdf", 40, false),
			archivetest.Doc("c", "tx.csv", "csv", 80, true),
			archivetest.Doc("d", `back\slash.csv`, "csv", 20, false),
			archivetest.Doc("e", "ReportX2026.pdf", "pdf", 85, true),
			`{"document_id":"f","s3_key":"broken.pdf","status":"failed","stage":"extraction","error":"bad"}`,
			archivetest.Doc("g", "Été.csv", "csv", 50, false),
		} {
			a.Must("archive_document", p)
		}
		tests := []struct {
			params string
			ids    []string // in order
			total  int
		}{
			{`{}`, []string{"g", "f", "e", "d", "c", "b", "a"}, 7},
			{`{"status":"archived"}`, []string{"e", "c", "a"}, 3},
			{`{"status":"failed"}`, []string{"f"}, 1},
			{`{"document_type":"pdf"}`, []string{"e", "b", "a"}, 3},
			{`{"document_type":"csv","status":"rejected"}`, []string{"g", "d"}, 2},
			{`{"file_name":"_"}`, []string{"a"}, 1},  // a literal underscore, not "any one character"
			{`{"file_name":"%"}`, []string{"b"}, 1},  // a literal percent, not "anything"
			{`{"file_name":"\\"}`, []string{"d"}, 1}, // a literal backslash
			{`{"file_name":"report"}`, []string{"e", "b", "a"}, 3},
			{`{"file_name":"REPORT"}`, []string{"e", "b", "a"}, 3}, // ASCII letters match in either case
			{`{"file_name":"été"}`, []string{}, 0},                 // other letters only in their own case
			{`{"file_name":"Été"}`, []string{"g"}, 1},
			{`{"file_name":"' OR 1=1 --"}`, []string{}, 0},
			{`{"file_name":"nothing"}`, []string{}, 0},
			{`{"limit":2}`, []string{"g", "f"}, 7},
			{`{"limit":2,"offset":2}`, []string{"e", "d"}, 7},
			{`{"limit":2,"offset":6}`, []string{"a"}, 7},
			{`{"offset":100}`, []string{}, 7},
			{`{"limit":500}`, []string{"g", "f", "e", "d", "c", "b", "a"}, 7},
		}
		for _, tc := range tests {
			t.Run(tc.params, func(t *testing.T) {
				res := a.Must("search_documents", tc.params)
				if ids, total := searchIDs(t, res); strings.Join(ids, ",") != strings.Join(tc.ids, ",") || total != tc.total {
					t.Fatalf("ids %v total %d, want %v total %d", ids, total, tc.ids, tc.total)
				}
			})
		}
		t.Run("defaults", func(t *testing.T) {
			res := a.Must("search_documents", `{}`)
			if res["limit"].(float64) != archivist.DefaultLimit || res["offset"].(float64) != 0 {
				t.Fatalf("%v", res)
			}
		})
	})
}

func searchIDs(t *testing.T, res map[string]any) ([]string, int) {
	t.Helper()
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
	return ids, int(res["total"].(float64))
}

// Documents archived in the same instant come in document_id byte order in
// both engines, whatever PostgreSQL's collation would say.
func TestSearchTiesInByteOrder(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		a, _ := fresh(t, e)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		archive.SetClock(a.Store, func() time.Time { return now })
		for _, id := range []string{"b", "B", "_x", "-x", "a", "A1", "a-2", "a_1", "0"} {
			a.Must("archive_document", archivetest.Doc(id, id+".pdf", "pdf", 50, true))
		}
		ids, _ := searchIDs(t, a.Must("search_documents", `{}`))
		if got, want := strings.Join(ids, " "), "-x 0 A1 B _x a a-2 a_1 b"; got != want {
			t.Fatalf("order %q, want %q", got, want)
		}
	})
}

func TestSearchDefaultLimit(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		a, _ := fresh(t, e)
		for i := range archivist.DefaultLimit + 5 {
			a.Must("archive_document", archivetest.Doc(fmt.Sprintf("d%03d", i), "a.pdf", "pdf", 90, true))
		}
		res := a.Must("search_documents", `{}`)
		if n := len(res["documents"].([]any)); n != archivist.DefaultLimit || int(res["total"].(float64)) != archivist.DefaultLimit+5 {
			t.Fatalf("%d documents, total %v", n, res["total"])
		}
	})
}

func TestStats(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		a, _ := fresh(t, e)
		empty := a.Must("get_document_stats", `{}`)
		if empty["total"].(float64) != 0 || empty["average_score"] != nil || len(empty["by_status"].(map[string]any)) != 0 {
			t.Fatalf("empty: %v", empty)
		}
		for _, p := range []string{
			archivetest.Doc("a", "a.pdf", "pdf", 90, true),
			archivetest.Doc("b", "b.pdf", "pdf", 40, false),
			archivetest.Doc("c", "c.csv", "csv", 80, true),
			archivetest.Doc("d", "d.csv", "csv", 71, true),
			`{"document_id":"f","s3_key":"broken","status":"failed","stage":"extraction"}`,
		} {
			a.Must("archive_document", p)
		}
		got := a.Must("get_document_stats", ``)
		want := `{"average_score":70.25,"by_status":{"archived":3,"failed":1,"rejected":1},"by_type":{"csv":2,"pdf":2,"unknown":1},"total":5}`
		if b, _ := json.Marshal(got); string(b) != want {
			t.Fatalf("stats %s\nwant %s", b, want)
		}
		_, err := a.Call("get_document_stats", `{"x":1}`)
		archivetest.WantCode(t, err, jsonrpc.CodeInvalidParams)
	})
}

// A closed store answers -32002 to every method, with nothing of the cause
// for the client, and logs the cause; the data is still there for the next
// store.
func TestStoreFailure(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		db := e.NewDB(t)
		logs := &syncbuf.Buffer{}
		a := db.Open(t, slog.New(slog.NewJSONHandler(logs, nil)))
		a.Must("archive_document", archivetest.Doc("kept", "a.pdf", "pdf", 90, true))
		a.Store.Close()

		calls := []struct{ method, params string }{
			{"archive_document", archivetest.Doc("new", "b.pdf", "pdf", 90, true)},
			{"get_document", `{"document_id":"kept"}`},
			{"update_document_status", `{"document_id":"kept","status":"rejected"}`},
			{"search_documents", `{}`},
			{"get_document_stats", `{}`},
		}
		for _, c := range calls {
			t.Run(c.method, func(t *testing.T) {
				_, err := a.Call(c.method, c.params)
				archivetest.WantCode(t, err, agentapi.CodeUnavailable)
				var rpc *jsonrpc.Error
				errors.As(err, &rpc)
				if rpc.Message != "archive store unavailable" || rpc.Data != nil {
					t.Fatalf("client sees %q %v", rpc.Message, rpc.Data)
				}
			})
		}
		if err := a.Store.Ping(t.Context()); err == nil {
			t.Fatal("ping of a closed store succeeded")
		}
		if !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), `"msg":"archive store failure"`) {
			t.Fatalf("failure not logged: %s", logs)
		}
		b := db.Open(t, nil)
		if got := b.Must("get_document", `{"document_id":"kept"}`); got["status"] != "archived" {
			t.Fatalf("kept: %v", got)
		}
		_, err := b.Call("get_document", `{"document_id":"new"}`)
		archivetest.WantCode(t, err, agentapi.CodeNotFound)
	})
}

// Archive failures answer -32002 without leaking the cause and leave
// nothing behind: neither the row when the history entry fails nor the
// history entry when the row fails. A retry after the fault succeeds.
func TestArchiveFailureWritesNothing(t *testing.T) {
	for _, table := range []string{"documents", "status_history"} {
		t.Run(table+" refused", func(t *testing.T) {
			archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
				db := e.NewDB(t)
				logs := &syncbuf.Buffer{}
				a := db.Open(t, slog.New(slog.NewJSONHandler(logs, nil)))
				cause := "disk full at /srv/" + db.Where
				restore := db.Break(t, table, cause)
				_, err := a.Call("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true))
				archivetest.WantCode(t, err, agentapi.CodeUnavailable)
				if strings.Contains(err.Error(), "disk full") || strings.Contains(err.Error(), db.Where) {
					t.Fatalf("client error leaks the cause: %v", err)
				}
				if !strings.Contains(logs.String(), "disk full") {
					t.Fatalf("cause not logged: %s", logs)
				}
				restore()
				if n := db.Int(t, "SELECT COUNT(*) FROM documents") + db.Int(t, "SELECT COUNT(*) FROM status_history"); n != 0 {
					t.Fatalf("%d rows after a failed archive", n)
				}
				if res := a.Must("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true)); res["created"] != true {
					t.Fatalf("retry after the failure: %v", res)
				}
			})
		})
	}
}

// A failure inside the status transaction leaves neither the new status nor
// a history row behind, and the client learns nothing about the SQL.
func TestUpdateStatusIsAtomic(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		db := e.NewDB(t)
		logs := &syncbuf.Buffer{}
		a := db.Open(t, slog.New(slog.NewJSONHandler(logs, nil)))
		a.Must("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true))
		before := a.Must("get_document", `{"document_id":"d1"}`)
		restore := db.Break(t, "status_history", "disk on fire at /srv/"+db.Where)
		_, err := a.Call("update_document_status", `{"document_id":"d1","status":"rejected"}`)
		archivetest.WantCode(t, err, agentapi.CodeUnavailable)
		if strings.Contains(err.Error(), "fire") || strings.Contains(err.Error(), db.Where) {
			t.Fatalf("client error leaks internals: %v", err)
		}
		if !strings.Contains(logs.String(), "disk on fire") {
			t.Fatalf("cause not logged: %s", logs)
		}
		after := a.Must("get_document", `{"document_id":"d1"}`)
		if after["status"] != "archived" || after["updated_at"] != before["updated_at"] {
			t.Fatalf("half-written update: %v", after)
		}
		if n := db.History(t, "d1"); n != 1 {
			t.Fatalf("history rows %d, want the creation only", n)
		}
		restore()
		a.Must("update_document_status", `{"document_id":"d1","status":"rejected"}`)
	})
}

func TestPersistsAcrossReopen(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		db := e.NewDB(t)
		a := db.Open(t, nil)
		a.Must("archive_document", archivetest.Doc("d1", "a.pdf", "pdf", 90, true))
		a.Must("update_document_status", `{"document_id":"d1","status":"rejected","reason":"manual"}`)
		// A second store sees committed rows while the first is still open.
		b := db.Open(t, nil)
		if got := b.Must("get_document", `{"document_id":"d1"}`); got["status"] != "rejected" {
			t.Fatalf("second reader: %v", got)
		}
		a.Store.Close()
		b.Store.Close()
		c := db.Open(t, nil)
		got := c.Must("get_document", `{"document_id":"d1"}`)
		if got["status"] != "rejected" || got["extracted_data"] == nil {
			t.Fatalf("after reopen: %v", got)
		}
		if n := db.Int(t, `SELECT COUNT(*) FROM status_history WHERE document_id = 'd1' AND reason = 'manual'`); n != 1 {
			t.Fatalf("history rows %d", n)
		}
	})
}

func TestMigrations(t *testing.T) {
	want := archive.SchemaVersion()
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		db := e.NewDB(t)
		versions := func() string {
			return fmt.Sprintf("%d versions, max %d", db.Int(t, `SELECT COUNT(*) FROM schema_migrations`), db.Int(t, `SELECT MAX(version) FROM schema_migrations`))
		}
		wantVersions := fmt.Sprintf("%d versions, max %d", want, want)
		t.Run("fresh", func(t *testing.T) {
			a := db.Open(t, nil)
			a.Must("archive_document", archivetest.Doc("kept", "a.pdf", "pdf", 90, true))
			a.Store.Close()
			if v := versions(); v != wantVersions {
				t.Fatalf("%s, want %s", v, wantVersions)
			}
		})
		t.Run("reopen is a no-op and keeps data", func(t *testing.T) {
			for range 2 {
				a := db.Open(t, nil)
				if got := a.Must("get_document", `{"document_id":"kept"}`); got["status"] != "archived" {
					t.Fatalf("%v", got)
				}
				a.Store.Close()
			}
			if v := versions(); v != wantVersions {
				t.Fatalf("%s after reopen", v)
			}
		})
		// Several archivists starting together on a fresh database apply
		// each migration once (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
		// advisory lock); several rounds make a regression show.
		t.Run("concurrent first opens", func(t *testing.T) {
			for range 3 {
				fresh := e.NewDB(t)
				var wg sync.WaitGroup
				errs := make(chan error, 8)
				for range 8 {
					wg.Go(func() {
						s, err := archive.Open(t.Context(), fresh.Config, archivetest.Quiet)
						if err == nil {
							err = s.Ping(t.Context())
							s.Close()
						}
						errs <- err
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				if n := fresh.Int(t, `SELECT COUNT(*) FROM schema_migrations`); n != want {
					t.Fatalf("%d version rows", n)
				}
			}
		})
		t.Run("newer schema refused", func(t *testing.T) {
			db.Exec(t, fmt.Sprintf(`INSERT INTO schema_migrations(version, applied_at) VALUES (%d, CURRENT_TIMESTAMP)`, want+1))
			s, err := archive.Open(t.Context(), db.Config, archivetest.Quiet)
			if err == nil {
				s.Close()
				t.Fatal("a newer schema was accepted")
			}
			if !errors.Is(err, archive.ErrNewerSchema) || !strings.Contains(err.Error(), "newer") {
				t.Fatalf("error %q", err)
			}
		})
	})
}

func TestCanceledContext(t *testing.T) {
	archivetest.ForEachEngine(t, func(t *testing.T, e engine) {
		a, _ := fresh(t, e)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		params := map[string]string{
			"archive_document": `{"document_id":"x","s3_key":"k","document_type":"pdf"}`,
			"get_document":     `{"document_id":"x"}`,
			"search_documents": `{}`,
		}
		for _, m := range archivist.New(a.Store).Methods() {
			if p, ok := params[m.Name]; ok {
				_, err := m.Handler(ctx, []byte(p))
				archivetest.WantCode(t, err, agentapi.CodeUnavailable)
			}
		}
		if n := a.Total(); n != 0 {
			t.Fatalf("%d rows after a canceled archive", n)
		}
	})
}
