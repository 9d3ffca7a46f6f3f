package extractor

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// The parses run in sandbox worker processes: the agent binary re-executed,
// finding these kinds registered by the time sandbox.Main runs (cmd/agent
// calls it first thing). The kind is the document type.
func init() {
	sandbox.Register(agentapi.DocumentTypePDF, parser(writePDF))
	sandbox.Register(agentapi.DocumentTypeCSV, parser(writeCSV))
}

// parser adds what every type shares: a blank document is refused before
// any format-specific reading.
func parser(write func(data []byte, out io.Writer) error) sandbox.Func {
	return func(doc []byte, out io.Writer) error {
		if len(bytes.TrimSpace(doc)) == 0 {
			return errEmpty
		}
		return write(doc, out)
	}
}

// Parse runs the parse of kind (a document type) in this process and
// returns the extracted_data it writes, at most maxOutput bytes
// (sandbox.ErrOutputTooLarge past that). It exists for tests and
// benchmarks, to compare with the worker: the agent never parses a
// document in its own process, and nothing else should, since a hostile
// document can stop the process that parses it.
func Parse(kind string, doc []byte, maxOutput int64) (json.RawMessage, error) {
	var write sandbox.Func
	switch kind {
	case agentapi.DocumentTypePDF:
		write = parser(writePDF)
	case agentapi.DocumentTypeCSV:
		write = parser(writeCSV)
	default:
		return nil, sandbox.ErrUnknownKind
	}
	w := &cappedBuffer{max: maxOutput}
	if err := write(doc, w); err != nil {
		return nil, err
	}
	return w.buf.Bytes(), nil
}

// cappedBuffer refuses, as the worker's output does, any write that would
// take it past max.
type cappedBuffer struct {
	buf bytes.Buffer
	max int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if int64(c.buf.Len())+int64(len(p)) > c.max {
		return 0, sandbox.ErrOutputTooLarge
	}
	return c.buf.Write(p)
}
