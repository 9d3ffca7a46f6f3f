package pdftest_test

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ledongthuc/pdf"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor/pdftest"
)

// TestBuildReadsBack checks the generated file with an independent reader
// and its cross-reference offsets byte for byte.
func TestBuildReadsBack(t *testing.T) {
	pages := []string{"Invoice 2026-001\nCustomer: ACME (Paris)", "Total: 7500.00 EUR\nback\\slash café", ""}
	data := pdftest.Build(pages...)
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if r.NumPage() != len(pages) {
		t.Fatalf("NumPage = %d, want %d", r.NumPage(), len(pages))
	}
	for i, want := range pages {
		got, err := r.Page(i + 1).GetPlainText(nil)
		if err != nil {
			t.Fatalf("page %d: %v", i+1, err)
		}
		for _, line := range strings.Split(want, "\n") {
			if !strings.Contains(got, line) {
				t.Errorf("page %d text %q lacks %q", i+1, got, line)
			}
		}
	}

	// Every in-use xref entry points at "N 0 obj".
	xref := bytes.LastIndex(data, []byte("\nxref\n")) + 1
	start := regexp.MustCompile(`startxref\n(\d+)\n`).FindSubmatch(data)
	if start == nil || string(start[1]) != strconv.Itoa(xref) {
		t.Fatalf("startxref %q, xref at %d", start, xref)
	}
	entries := regexp.MustCompile(`(\d{10}) 00000 n \n`).FindAllSubmatch(data[xref:], -1)
	if len(entries) != 3+2*len(pages) {
		t.Fatalf("%d xref entries", len(entries))
	}
	for i, e := range entries {
		off, _ := strconv.Atoi(string(e[1]))
		if want := strconv.Itoa(i+1) + " 0 obj\n"; !bytes.HasPrefix(data[off:], []byte(want)) {
			t.Errorf("entry %d points at %q", i+1, data[off:off+10])
		}
	}
}
