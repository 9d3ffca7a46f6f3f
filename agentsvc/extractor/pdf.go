package extractor

import (
	"bytes"
	"context"
	"strings"

	"github.com/ledongthuc/pdf"

	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// maxPages bounds the pages read from one PDF.
const maxPages = 2000

var errCorruptPDF = jsonrpc.InvalidParams("corrupt or unreadable PDF")

// ExtractPDF returns the text of each page of data. Every error is a
// *jsonrpc.Error.
func ExtractPDF(data []byte) (*PDFData, error) {
	return extractPDF(context.Background(), data)
}

func extractPDF(ctx context.Context, data []byte) (out *PDFData, err error) {
	if !bytes.HasPrefix(data, []byte("%PDF-")) {
		return nil, jsonrpc.InvalidParams("unsupported document type: content is not a PDF")
	}
	// The PDF library panics on some malformed inputs: a corrupt document
	// is the caller's mistake, not a reason to crash the agent.
	defer func() {
		if recover() != nil {
			out, err = nil, errCorruptPDF
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, errCorruptPDF
	}
	n := r.NumPage()
	if n < 1 {
		return nil, jsonrpc.InvalidParams("corrupt or unreadable PDF: no pages")
	}
	if n > maxPages {
		return nil, jsonrpc.InvalidParams("PDF has more than %d pages", maxPages)
	}
	out = &PDFData{PageCount: n, Pages: make([]Page, 0, n)}
	for i := 1; i <= n; i++ {
		if ctx.Err() != nil {
			return nil, jsonrpc.Errorf(jsonrpc.CodeUnavailable, "extraction interrupted: %v", ctx.Err())
		}
		p := r.Page(i)
		text := ""
		if !p.V.IsNull() {
			t, err := p.GetPlainText(nil)
			if err != nil {
				return nil, jsonrpc.InvalidParams("corrupt or unreadable PDF: page %d", i)
			}
			// Fonts without a usable encoding yield raw bytes; JSON needs
			// UTF-8.
			text = strings.TrimSpace(strings.ToValidUTF8(t, "\uFFFD"))
		}
		out.Pages = append(out.Pages, Page{Number: i, Text: text})
	}
	return out, nil
}
