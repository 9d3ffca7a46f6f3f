package extractor_test

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor/pdftest"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// parsePDF runs the worker's PDF parse in this process. Only documents known
// to end quickly go through it; hostile ones go through workers.
func parsePDF(t *testing.T, doc []byte) (*agentapi.PDFData, error) {
	t.Helper()
	raw, err := extractor.Parse("pdf", doc, agentapi.MaxExtractedDataBytes)
	if err != nil {
		return nil, err
	}
	return decode[agentapi.PDFData](t, raw), nil
}

func TestExtractPDF(t *testing.T) {
	pages := []string{
		"Page one\nsecond line",
		"",
		"Parentheses (kept) and back\\slash",
		"Accents: café, élève",
	}
	d, err := parsePDF(t, pdftest.Build(pages...))
	if err != nil {
		t.Fatal(err)
	}
	if d.PageCount != 4 || len(d.Pages) != 4 {
		t.Fatalf("pages: %+v", d)
	}
	want := []string{"Page one\nsecond line", "", "Parentheses (kept) and back\\slash", "Accents: café, élève"}
	for i, p := range d.Pages {
		if p.Number != i+1 || p.Text != want[i] {
			t.Errorf("page %d: %+v, want text %q", i+1, p, want[i])
		}
	}
}

func TestExtractPDFErrors(t *testing.T) {
	good := pdftest.Build("hello", "world")
	tests := []struct {
		name    string
		in      []byte
		message string
	}{
		{"no header", []byte("hello"), "unsupported document type"},
		{"header not at start", append([]byte("junk"), good...), "unsupported document type"},
		{"garbage body", []byte("%PDF-1.4\nthis is not a pdf body at all\n"), "corrupt or unreadable PDF"},
		{"truncated", good[:len(good)/2], "corrupt or unreadable PDF"},
		{"xref offsets wrong", bytes.Replace(good, []byte("startxref\n"), []byte("startxref\n1"), 1), "corrupt or unreadable PDF"},
		{"zero pages", pdftest.Build(), "no pages"},
		{"blank", []byte(" \n"), "empty document"},
		// Same-length edits keep the xref offsets right. The library's
		// Reader.Page loops forever on these.
		{"page tree lists itself", bytes.Replace(good, []byte("/Kids [4 0 R 6 0 R]"), []byte("/Kids [2 0 R 6 0 R]"), 1), "page tree too deep or cyclic"},
		{"page tree lists itself twice", bytes.Replace(good, []byte("/Kids [4 0 R 6 0 R]"), []byte("/Kids [2 0 R 2 0 R]"), 1), "page tree too deep or cyclic"},
		{"header only", []byte("%PDF-"), "corrupt or unreadable PDF"},
		// The library's inherited-attribute lookup loops forever on these
		// (a page without /Resources whose /Parent chain is a cycle).
		{"page is its own parent", noResources(bytes.Replace(good, []byte("/Parent 2 0 R"), []byte("/Parent 4 0 R"), 1)), "page tree too deep or cyclic"},
		{"pages are each other's parent", noResources(bytes.Replace(bytes.Replace(good,
			[]byte("/Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 5"), []byte("/Parent 6 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 5"), 1),
			[]byte("/Parent 2 0 R"), []byte("/Parent 4 0 R"), 1)), "page tree too deep or cyclic"},
		// The library's own depth limit turns these into a panic the
		// parse recovers.
		{"nested arrays", pdftest.NestedArrays(100_000), "corrupt or unreadable PDF"},
		{"nested dictionaries", pdftest.NestedDicts(100_000), "corrupt or unreadable PDF"},
	}
	for _, tc := range tests {
		_, err := parsePDF(t, tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.message)
		}
	}
}

// noResources renames every /Resources entry (same length, so the xref
// offsets stay right).
func noResources(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("/Resources"), []byte("/Xesources"))
}

func TestExtractPDFMetadata(t *testing.T) {
	d, err := parsePDF(t, pdftest.BuildInfo(map[string]string{
		"Title": "Invoice 2026-001", "Author": "ACME (Paris)", "Producer": "pdftest", "Subject": "  ",
		"CreationDate": "D:20260102150405+01'00'", "Trapped": "ignored",
	}, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"title": "Invoice 2026-001", "author": "ACME (Paris)", "producer": "pdftest", "creation_date": "D:20260102150405+01'00'"}
	if !reflect.DeepEqual(d.Metadata, want) {
		t.Fatalf("metadata %v, want %v", d.Metadata, want)
	}
	if d, _ := parsePDF(t, pdftest.Build("x")); d.Metadata != nil {
		t.Fatalf("metadata without an Info dictionary: %v", d.Metadata)
	}
}

// bombPDF returns a PDF with pages pages that all draw one Flate content
// stream inflating to about inflated bytes of text-showing operators.
func bombPDF(t *testing.T, pages, inflated int) []byte {
	t.Helper()
	var z bytes.Buffer
	w, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	line := []byte("(" + strings.Repeat("A", 1000) + ") Tj\n")
	w.Write([]byte("BT /F1 12 Tf 72 720 Td\n"))
	for n := 0; n < inflated; n += len(line) {
		w.Write(line)
	}
	w.Write([]byte("ET"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	kids := make([]string, pages)
	for i := range kids {
		kids[i] = "5 0 R"
	}
	return pdftest.Assemble("",
		"<< /Type /Catalog /Pages 2 0 R >>",
		fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pages),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		pdftest.Stream("/Filter /FlateDecode", z.Bytes()),
		"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>",
	)
}

// TestPDFBudgets: the inflated content is bounded per document, shared
// streams counted at each use, before the library inflates anything without
// a bound; the text is bounded by the output limit.
func TestPDFBudgets(t *testing.T) {
	defer extractor.SetDecodedLimit(1 << 20)()
	tests := []struct {
		name     string
		in       []byte
		maxOut   int64
		message  string
		wantText bool
	}{
		{"small stream, one page", bombPDF(t, 1, 100<<10), 1 << 20, "", true},
		{"stream inflating past the budget", bombPDF(t, 1, 4<<20), 1 << 20, "exceeds 1048576 bytes once decompressed", false},
		{"small stream shared by many pages", bombPDF(t, 20, 100<<10), 4 << 20, "exceeds 1048576 bytes once decompressed", false},
		{"text past the output limit", bombPDF(t, 3, 100<<10), 256 << 10, "output too large", false},
		{"a GiB of Flate", pdftest.FlateBomb(1 << 30), 1 << 20, "exceeds 1048576 bytes once decompressed", false},
	}
	for _, tc := range tests {
		if len(tc.in) > 4<<20 {
			t.Fatalf("%s: the bomb is %d bytes", tc.name, len(tc.in))
		}
		raw, err := extractor.Parse("pdf", tc.in, tc.maxOut)
		if tc.message == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if d := decode[agentapi.PDFData](t, raw); !strings.HasPrefix(d.Pages[0].Text, "AAAA") {
				t.Errorf("%s: text %.20q", tc.name, d.Pages[0].Text)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.message)
		}
	}
}
