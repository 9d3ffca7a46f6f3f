package extractor

import (
	"bytes"
	"context"
	"strings"

	"github.com/ledongthuc/pdf"

	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

const (
	// maxPages bounds the pages read from one PDF.
	maxPages = 2000
	// maxTreeDepth and maxTreeNodes bound the walk of the page tree: the
	// library's own walk (Reader.Page) loops forever on a tree that lists
	// itself among its kids, and Values have no identity to detect a cycle.
	maxTreeDepth = 32
	maxTreeNodes = 4 * maxPages
)

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
	leaves, err := pageLeaves(r.Trailer().Key("Root").Key("Pages"))
	if err != nil {
		return nil, err
	}
	n := len(leaves)
	if n < 1 {
		return nil, jsonrpc.InvalidParams("corrupt or unreadable PDF: no pages")
	}
	out = &PDFData{PageCount: n, Pages: make([]Page, 0, n)}
	for i := 1; i <= n; i++ {
		if ctx.Err() != nil {
			return nil, jsonrpc.Errorf(jsonrpc.CodeUnavailable, "extraction interrupted: %v", ctx.Err())
		}
		p := pdf.Page{V: leaves[i-1]}
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

// pageLeaves returns the page objects under the page tree root, in order.
// It trusts no /Count: the leaves are counted, within fixed bounds.
func pageLeaves(root pdf.Value) ([]pdf.Value, error) {
	var leaves []pdf.Value
	nodes := 0
	var walk func(v pdf.Value, depth int) error
	walk = func(v pdf.Value, depth int) error {
		nodes++
		if depth > maxTreeDepth || nodes > maxTreeNodes {
			return jsonrpc.InvalidParams("corrupt or unreadable PDF: page tree too deep or cyclic")
		}
		switch v.Key("Type").Name() {
		case "Page":
			if len(leaves) == maxPages {
				return jsonrpc.InvalidParams("PDF has more than %d pages", maxPages)
			}
			leaves = append(leaves, v)
		case "Pages":
			kids := v.Key("Kids")
			for i := 0; i < kids.Len(); i++ {
				if err := walk(kids.Index(i), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, 0); err != nil {
		return nil, err
	}
	return leaves, nil
}
