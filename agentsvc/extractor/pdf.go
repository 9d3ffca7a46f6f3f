package extractor

import (
	"bytes"
	"strings"

	"github.com/ledongthuc/pdf"

	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// maxPages bounds the pages read from one PDF.
const maxPages = 2000

// ExtractPDF returns the text of each page.
func ExtractPDF(data []byte) (out *PDFData, err error) {
	if !bytes.HasPrefix(data, []byte("%PDF-")) {
		return nil, jsonrpc.InvalidParams("corrupt or unreadable PDF: no PDF header")
	}
	// The PDF library panics on some malformed inputs; a corrupt document
	// is the caller's problem, not a crash.
	defer func() {
		if recover() != nil {
			out, err = nil, jsonrpc.InvalidParams("corrupt or unreadable PDF")
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, jsonrpc.InvalidParams("corrupt or unreadable PDF")
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
		p := r.Page(i)
		text := ""
		if !p.V.IsNull() {
			t, err := p.GetPlainText(nil)
			if err != nil {
				return nil, jsonrpc.InvalidParams("corrupt or unreadable PDF: page %d", i)
			}
			text = strings.TrimSpace(t)
		}
		out.Pages = append(out.Pages, Page{Number: i, Text: text})
	}
	return out, nil
}
