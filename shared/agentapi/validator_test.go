package agentapi_test

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// jsonOf returns a JSON object of exactly n bytes.
func jsonOf(t *testing.T, n int) []byte {
	t.Helper()
	const open, end = `{"x":"`, `"}`
	b := []byte(open + strings.Repeat("a", n-len(open)-len(end)) + end)
	if len(b) != n {
		t.Fatal("jsonOf")
	}
	return b
}

// TestArchiveRequestFitsTheHop: the worst archive_document request the
// orchestrator can send (extracted data at its bound, a validation report
// at its bound, s3_key, file_name and bucket at the archivist's limits in
// the characters JSON escapes the most, the largest request id) encodes,
// as agentclient encodes it, within the hop limit. The reserve
// MaxBodyBytes - MaxExtractedDataBytes is then enough.
func TestArchiveRequestFitsTheHop(t *testing.T) {
	worst := func(n int) string { return strings.Repeat("\x01", n) } // escaped as \u0001: 6 bytes each
	p := agentapi.ArchiveParams{
		DocumentID: "doc-" + strings.Repeat("f", 32), S3Key: worst(1024), Bucket: worst(255),
		DocumentType: agentapi.DocumentTypeCSV, FileName: worst(1024), SHA256: strings.Repeat("f", 64),
		Status:        agentapi.StatusRejected,
		ExtractedData: jsonOf(t, agentapi.MaxExtractedDataBytes), Validation: jsonOf(t, agentapi.MaxValidationReportBytes),
	}
	// As agentclient encodes a call.
	raw, err := jsonrpc.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	body, err := jsonrpc.Marshal(jsonrpc.Request{JSONRPC: jsonrpc.Version, Method: agentapi.MethodArchiveDocument, Params: raw,
		ID: strconv.AppendInt(nil, math.MaxInt64, 10)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worst archive_document request: %d bytes, %d to spare", len(body), agentapi.MaxBodyBytes-len(body))
	if len(body) > agentapi.MaxBodyBytes {
		t.Fatalf("the worst archive_document request takes %d bytes, over the hop limit of %d", len(body), agentapi.MaxBodyBytes)
	}
}
