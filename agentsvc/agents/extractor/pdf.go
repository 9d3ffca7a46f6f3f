package extractor

import (
	"bytes"
	"context"
	"io"
	"strings"

	"github.com/ledongthuc/pdf"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Bounds on the work one PDF may cause. The library trusts the document: it
// loops forever on some cyclic structures, inflates streams without limit
// and buffers a page's text in memory. Every structure it would walk is
// checked here first.
const (
	// MaxPages bounds the pages read from one PDF.
	MaxPages = 2000
	// maxTreeDepth and maxTreeNodes bound the walk of the page tree, and
	// maxTreeDepth also a page's /Parent chain: the library's own walks
	// (Reader.Page, and the inherited-attribute lookup behind
	// GetPlainText) loop forever on cycles, and Values have no identity to
	// detect one.
	maxTreeDepth = 32
	maxTreeNodes = 4 * MaxPages
	// maxMetadataBytes bounds one metadata value.
	maxMetadataBytes = 1024
)

// Variables so that tests can lower them.
var (
	// maxDecodedBytes bounds the decompressed size of the content and
	// ToUnicode streams interpreted for one document: a few KiB of Flate
	// data can inflate to GiBs.
	maxDecodedBytes int64 = 128 << 20
	// maxTextBytes bounds the text extracted from one document.
	maxTextBytes = 16 << 20
)

var errCorruptPDF = jsonrpc.InvalidParams("corrupt or unreadable PDF")

// metadataKeys maps the document information dictionary's entries to the
// names extracted_data.metadata uses.
var metadataKeys = []struct{ pdf, json string }{
	{"Title", "title"},
	{"Author", "author"},
	{"Subject", "subject"},
	{"Keywords", "keywords"},
	{"Creator", "creator"},
	{"Producer", "producer"},
	{"CreationDate", "creation_date"},
	{"ModDate", "mod_date"},
}

// ExtractPDF returns the text of each page of data. Every error is a
// *jsonrpc.Error.
func ExtractPDF(data []byte) (*agentapi.PDFData, error) {
	return extractPDF(context.Background(), data)
}

func extractPDF(ctx context.Context, data []byte) (out *agentapi.PDFData, err error) {
	if !bytes.HasPrefix(data, []byte("%PDF-")) {
		return nil, jsonrpc.InvalidParams("unsupported document type: content is not a PDF")
	}
	// The PDF library panics on many malformed inputs: a corrupt document
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
	out = &agentapi.PDFData{PageCount: n, Pages: make([]agentapi.Page, 0, n), Metadata: metadata(r.Trailer().Key("Info"))}
	decoded, textBytes := int64(0), 0
	for i, leaf := range leaves {
		if ctx.Err() != nil {
			return nil, jsonrpc.Errorf(agentapi.CodeUnavailable, "extraction interrupted: %v", ctx.Err())
		}
		// Inflate what GetPlainText will interpret, within the budget,
		// before the library does it without one.
		if decoded += pageStreamBytes(leaf, maxDecodedBytes-decoded); decoded > maxDecodedBytes {
			return nil, jsonrpc.InvalidParams("PDF content exceeds %d bytes once decompressed", maxDecodedBytes)
		}
		t, err := pdf.Page{V: leaf}.GetPlainText(nil)
		if err != nil {
			return nil, jsonrpc.InvalidParams("corrupt or unreadable PDF: page %d", i+1)
		}
		// Fonts without a usable encoding yield raw bytes; JSON needs
		// UTF-8.
		text := strings.TrimSpace(strings.ToValidUTF8(t, "\uFFFD"))
		if textBytes += len(text); textBytes > maxTextBytes {
			return nil, jsonrpc.InvalidParams("PDF text exceeds %d bytes", maxTextBytes)
		}
		out.Pages = append(out.Pages, agentapi.Page{Number: i + 1, Text: text})
	}
	return out, nil
}

// pageLeaves returns the page objects under the page tree root, in order.
// It trusts no /Count: the leaves are counted, within fixed bounds. Each
// leaf's /Parent chain must end within maxTreeDepth steps.
func pageLeaves(root pdf.Value) ([]pdf.Value, error) {
	var leaves []pdf.Value
	nodes := 0
	errCyclic := jsonrpc.InvalidParams("corrupt or unreadable PDF: page tree too deep or cyclic")
	var walk func(v pdf.Value, depth int) error
	walk = func(v pdf.Value, depth int) error {
		nodes++
		if depth > maxTreeDepth || nodes > maxTreeNodes {
			return errCyclic
		}
		switch v.Key("Type").Name() {
		case "Page":
			if len(leaves) == MaxPages {
				return jsonrpc.InvalidParams("PDF has more than %d pages", MaxPages)
			}
			if !parentChainEnds(v) {
				return errCyclic
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

// parentChainEnds reports whether following /Parent from v reaches a node
// without one within maxTreeDepth+1 steps.
func parentChainEnds(v pdf.Value) bool {
	for range maxTreeDepth + 2 {
		if v.IsNull() {
			return true
		}
		v = v.Key("Parent")
	}
	return false
}

// inherited returns the attribute key of page or of its nearest ancestor,
// as the PDF spec defines inheritance. The chain is known to end
// (parentChainEnds).
func inherited(page pdf.Value, key string) pdf.Value {
	for v := page; !v.IsNull(); v = v.Key("Parent") {
		if r := v.Key(key); !r.IsNull() {
			return r
		}
	}
	return pdf.Value{}
}

// pageStreamBytes returns the decompressed size of the streams GetPlainText
// interprets for page (its content streams and its fonts' ToUnicode
// CMaps), reading at most budget+1 bytes in all. Read errors are left for
// GetPlainText to report.
func pageStreamBytes(page pdf.Value, budget int64) int64 {
	var streams []pdf.Value
	switch c := page.Key("Contents"); c.Kind() {
	case pdf.Stream:
		streams = append(streams, c)
	case pdf.Array:
		for i := 0; i < c.Len(); i++ {
			streams = append(streams, c.Index(i))
		}
	}
	fonts := inherited(page, "Resources").Key("Font")
	for _, name := range fonts.Keys() {
		streams = append(streams, fonts.Key(name).Key("ToUnicode"))
	}
	var total int64
	for _, s := range streams {
		if s.Kind() != pdf.Stream {
			continue
		}
		rc := s.Reader()
		n, _ := io.Copy(io.Discard, io.LimitReader(rc, budget-total+1))
		_ = rc.Close()
		if total += n; total > budget {
			break
		}
	}
	return total
}

// metadata returns the document information dictionary's text entries, or
// nil when it has none. A broken dictionary costs the metadata, not the
// text.
func metadata(info pdf.Value) (m map[string]string) {
	defer func() {
		if recover() != nil {
			m = nil
		}
	}()
	for _, k := range metadataKeys {
		v := info.Key(k.pdf)
		if v.Kind() != pdf.String {
			continue
		}
		s := strings.TrimSpace(strings.ToValidUTF8(v.Text(), "\uFFFD"))
		if len(s) > maxMetadataBytes {
			s = strings.ToValidUTF8(s[:maxMetadataBytes], "")
		}
		if s == "" {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[k.json] = s
	}
	return m
}
