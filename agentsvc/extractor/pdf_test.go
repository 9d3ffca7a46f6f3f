package extractor_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/extractor/pdftest"
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
	}
	for _, tc := range tests {
		_, err := extractor.ExtractPDF(tc.in)
		if jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v, want -32602 with %q", tc.name, err, tc.message)
		}
	}
}

func TestExtractCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := extractor.Extract(ctx, "a.pdf", pdftest.Build("a", "b"))
	if jsonrpc.CodeOf(err) != jsonrpc.CodeUnavailable {
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
