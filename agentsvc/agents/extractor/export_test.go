package extractor

import (
	"context"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// SetLimits lowers the PDF budgets for a test and restores them after.
func SetLimits(decoded int64, text int) (restore func()) {
	d, t := maxDecodedBytes, maxTextBytes
	maxDecodedBytes, maxTextBytes = decoded, text
	return func() { maxDecodedBytes, maxTextBytes = d, t }
}

// SetPDFParser replaces the PDF parse run in a worker, for a test.
func SetPDFParser(f func(ctx context.Context, key string, data []byte) (*agentapi.ExtractResult[any], error)) (restore func()) {
	old := parsePDF
	parsePDF = f
	return func() { parsePDF = old }
}
