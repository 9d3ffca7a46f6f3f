package archivist_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/internal/testutil/archivetest"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// The store-facing behaviour of these methods (idempotence, transitions,
// search, stats, failures) is the archive's contract suite, run on both
// engines: agentsvc/storage/archive/contract_test.go. Here: what the
// methods refuse before any store is asked.

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
		{"NUL in s3_key", "archive_document", base("s3_key", `"a\u0000b"`)},
		{"NUL in file_name", "archive_document", base("file_name", `"a\u0000.pdf"`)},
		{"NUL in bucket", "archive_document", base("bucket", `"b\u0000"`)},
		{"NUL in error", "archive_document", base("status", `"failed"`, "error", `"\u0000"`)},
		{"get unknown field", "get_document", `{"document_id":"d1","x":1}`},
		{"get bad id", "get_document", `{"document_id":"d%"}`},
		{"get no id", "get_document", `{}`},
		{"update unknown field", "update_document_status", `{"document_id":"d1","status":"archived","by":"me"}`},
		{"update bad id", "update_document_status", `{"document_id":"../d","status":"archived"}`},
		{"update empty status", "update_document_status", `{"document_id":"d1","status":""}`},
		{"update NUL in reason", "update_document_status", `{"document_id":"d1","status":"archived","reason":"a\u0000"}`},
		{"update long reason", "update_document_status", `{"document_id":"d1","status":"archived","reason":"` + strings.Repeat("r", 1025) + `"}`},
		{"search limit 0", "search_documents", `{"limit":0}`},
		{"search limit 501", "search_documents", `{"limit":501}`},
		{"search limit negative", "search_documents", `{"limit":-1}`},
		{"search offset negative", "search_documents", `{"offset":-1}`},
		{"search limit fractional", "search_documents", `{"limit":1.5}`},
		{"search bad status", "search_documents", `{"status":"x"}`},
		{"search bad type", "search_documents", `{"document_type":"exe"}`},
		{"search unknown field", "search_documents", `{"query":"x"}`},
		{"search NUL in file_name", "search_documents", `{"file_name":"\u0000"}`},
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
