package extractor_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor/pdftest"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

func TestExtractPDF(t *testing.T) {
	pages := []string{
		"Page one\nsecond line",
		"",
		"Parentheses (kept) and back\\slash",
		"Accents: café, élève",
	}
	d, err := extractor.ExtractPDF(pdftest.Build(pages...))
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
	}
	for _, tc := range tests {
		_, err := extractor.ExtractPDF(tc.in)
		if jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v, want -32602 with %q", tc.name, err, tc.message)
		}
	}
}

// noResources renames every /Resources entry (same length, so the xref
// offsets stay right).
func noResources(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("/Resources"), []byte("/Xesources"))
}

func TestExtractPDFMetadata(t *testing.T) {
	d, err := extractor.ExtractPDF(pdftest.BuildInfo(map[string]string{
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
	if d, _ := extractor.ExtractPDF(pdftest.Build("x")); d.Metadata != nil {
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

// TestPDFBudgets: the inflated content and the extracted text are bounded
// per document, shared streams counted at each use, before the library
// inflates anything without a bound.
func TestPDFBudgets(t *testing.T) {
	tests := []struct {
		name     string
		pages    int
		inflated int
		text     int // text budget; the inflation budget is 1 MiB
		message  string
	}{
		{"small stream, one page", 1, 100 << 10, 1 << 20, ""},
		{"stream inflating past the budget", 1, 4 << 20, 1 << 20, "exceeds 1048576 bytes once decompressed"},
		{"small stream shared by many pages", 20, 100 << 10, 4 << 20, "exceeds 1048576 bytes once decompressed"},
		{"text past the budget", 3, 100 << 10, 256 << 10, "PDF text exceeds 262144 bytes"},
	}
	for _, tc := range tests {
		restore := extractor.SetLimits(1<<20, tc.text)
		defer restore()
		in := bombPDF(t, tc.pages, tc.inflated)
		if len(in) > 64<<10 {
			t.Fatalf("%s: the bomb is %d bytes", tc.name, len(in))
		}
		d, err := extractor.ExtractPDF(in)
		if tc.message == "" {
			if err != nil || d.PageCount != tc.pages || !strings.HasPrefix(d.Pages[0].Text, "AAAA") {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v, want -32602 with %q", tc.name, err, tc.message)
		}
	}
}

func TestExtractCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := extractor.Extract(ctx, "a.pdf", pdftest.Build("a", "b"))
	if jsonrpc.CodeOf(err) != agentapi.CodeUnavailable {
		t.Fatalf("cancelled extraction: %v", err)
	}
}

func FuzzExtractPDF(f *testing.F) {
	f.Add(pdftest.Build("Invoice", "Total: 7500.00 EUR"))
	f.Add(pdftest.Build())
	f.Add([]byte("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF"))
	f.Add([]byte("%PDF-1.7\nxref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 1 /Root 1 0 R >>\nstartxref\n9\n%%EOF\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		d, err := extractor.ExtractPDF(data) // must not panic
		if err != nil {
			if jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
				t.Fatalf("error %v is not -32602", err)
			}
			return
		}
		if d.PageCount != len(d.Pages) || d.PageCount < 1 {
			t.Fatalf("inconsistent pages: %d vs %d", d.PageCount, len(d.Pages))
		}
	})
}
