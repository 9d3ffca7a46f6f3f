package agentapi_test

import (
	"testing"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// TestPermanent pins the failure classes: only a refusal of the input
// itself is permanent.
func TestPermanent(t *testing.T) {
	for code, want := range map[int]bool{
		jsonrpc.CodeInvalidParams: true, agentapi.CodeTooLarge: true,
		agentapi.CodeUnavailable: false, agentapi.CodeNotFound: false, jsonrpc.CodeInternalError: false,
		agentapi.CodeUnauthenticated: false, agentapi.CodeForbidden: false, jsonrpc.CodeMethodNotFound: false, 0: false,
	} {
		if got := agentapi.Permanent(code); got != want {
			t.Errorf("Permanent(%d) = %v, want %v", code, got, want)
		}
	}
	if agentapi.MaxExtractedDataBytes >= agentapi.MaxBodyBytes || agentapi.MaxBodyBytes != 1<<20 {
		t.Fatalf("hop limit %d, extracted data %d", agentapi.MaxBodyBytes, agentapi.MaxExtractedDataBytes)
	}
}
