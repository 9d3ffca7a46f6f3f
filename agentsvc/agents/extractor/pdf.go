package extractor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ledongthuc/pdf"
)

// Bounds on the work one PDF may cause. The library trusts the document: it
// loops forever on some cyclic structures, inflates streams without limit
// and buffers a page's text in memory. The worker's limits end whatever
// gets past these checks (a cyclic cross-reference chain, a huge table);
// the checks turn the known cases into a clear reason instead of a killed
// worker. The text is bounded by the output limit.
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

// maxDecodedBytes bounds the decompressed size of the content and
// ToUnicode streams interpreted for one document: a few KiB of Flate data
// can inflate to GiBs. A variable so that tests can lower it.
var maxDecodedBytes int64 = 128 << 20

var (
	errNotPDF     = errors.New("unsupported document type: content is not a PDF")
	errCorruptPDF = errors.New("corrupt or unreadable PDF")
	errNoPages    = errors.New("corrupt or unreadable PDF: no pages")
	errCyclicTree = errors.New("corrupt or unreadable PDF: page tree too deep or cyclic")
)

// metadataKeys maps the document information dictionary's entries to the
// names extracted_data.metadata uses, in the order they are written (sorted,
// as encoding/json writes a map).
var metadataKeys = []struct{ pdf, json string }{
	{"Author", "author"},
	{"CreationDate", "creation_date"},
	{"Creator", "creator"},
	{"Keywords", "keywords"},
	{"ModDate", "mod_date"},
	{"Producer", "producer"},
	{"Subject", "subject"},
	{"Title", "title"},
}

// writePDF writes the extracted_data of a PDF (agentapi.PDFData) to out,
// page by page as the text is extracted. It runs in a worker process; an
// error is the reason the document cannot be parsed, or the writer's refusal
// to pass the output limit.
func writePDF(data []byte, out io.Writer) (err error) {
	if !bytes.HasPrefix(data, []byte("%PDF-")) {
		return errNotPDF
	}
	// The PDF library panics on many malformed inputs: report the document
	// as corrupt rather than the worker as crashed.
	defer func() {
		if recover() != nil {
			err = errCorruptPDF
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return errCorruptPDF
	}
	leaves, err := pageLeaves(r.Trailer().Key("Root").Key("Pages"))
	if err != nil {
		return err
	}
	if len(leaves) < 1 {
		return errNoPages
	}
	meta := metadata(r.Trailer().Key("Info"))
	j := newJSONWriter(out)
	j.raw(`{"pages":[`)
	decoded := int64(0)
	for i, leaf := range leaves {
		// Inflate what GetPlainText will interpret, within the budget,
		// before the library does it without one.
		if decoded += pageStreamBytes(leaf, maxDecodedBytes-decoded); decoded > maxDecodedBytes {
			return fmt.Errorf("PDF content exceeds %d bytes once decompressed", maxDecodedBytes)
		}
		t, err := pdf.Page{V: leaf}.GetPlainText(nil)
		if err != nil {
			return fmt.Errorf("corrupt or unreadable PDF: page %d", i+1)
		}
		if i > 0 {
			j.raw(",")
		}
		j.raw(`{"number":`)
		j.int(i + 1)
		j.raw(`,"text":`)
		// Fonts without a usable encoding yield raw bytes: each run
		// becomes one U+FFFD (the validator counts them).
		j.str(strings.TrimSpace(strings.ToValidUTF8(t, "\uFFFD")))
		j.raw("}")
		if j.err != nil {
			return j.err
		}
	}
	j.raw(`],"page_count":`)
	j.int(len(leaves))
	if len(meta) > 0 {
		j.raw(`,"metadata":{`)
		n := 0
		for _, k := range metadataKeys {
			v, ok := meta[k.json]
			if !ok {
				continue
			}
			if n > 0 {
				j.raw(",")
			}
			n++
			j.str(k.json)
			j.raw(":")
			j.str(v)
		}
		j.raw("}")
	}
	j.raw("}")
	return j.flush()
}

// pageLeaves returns the page objects under the page tree root, in order.
// It trusts no /Count: the leaves are counted, within fixed bounds. Each
// leaf's /Parent chain must end within maxTreeDepth steps.
func pageLeaves(root pdf.Value) ([]pdf.Value, error) {
	var leaves []pdf.Value
	nodes := 0
	var walk func(v pdf.Value, depth int) error
	walk = func(v pdf.Value, depth int) error {
		nodes++
		if depth > maxTreeDepth || nodes > maxTreeNodes {
			return errCyclicTree
		}
		switch v.Key("Type").Name() {
		case "Page":
			if len(leaves) == MaxPages {
				return fmt.Errorf("PDF has more than %d pages", MaxPages)
			}
			if !parentChainEnds(v) {
				return errCyclicTree
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
