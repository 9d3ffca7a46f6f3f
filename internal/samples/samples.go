// Package samples writes small, valid documents for tests and the demo: a
// multi-page PDF with real text and a CSV.
package samples

import (
	"bytes"
	"fmt"
	"strings"
)

// PDF returns a PDF 1.4 document with one page per string, each drawing its
// text in Helvetica. Lines of a page are separated by "\n".
func PDF(pages ...string) []byte {
	var b bytes.Buffer
	var offsets []int
	obj := func(body string) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
	}
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	n := len(pages)
	// Objects: 1 catalog, 2 pages, 3 font, then per page: page, content.
	kids := make([]string, n)
	for i := range pages {
		kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	for i, text := range pages {
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i))
		var content strings.Builder
		content.WriteString("BT /F1 12 Tf 14 TL 72 720 Td\n")
		for _, line := range strings.Split(text, "\n") {
			fmt.Fprintf(&content, "(%s) Tj T*\n", escape(line))
		}
		content.WriteString("ET")
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", content.Len(), content.String()))
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}

func escape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`)
	return r.Replace(s)
}

// Invoice is a two-page sample invoice.
func Invoice() []byte {
	return PDF(
		"INVOICE 2026-0042\nCA A2A Consulting, 12 rue de la Paix, Paris\nBill to: Example Industries\nDate: 2026-11-25",
		"Item: Security review, 3 days, 4500.00 EUR\nItem: mTLS rollout, 2 days, 3000.00 EUR\nTotal: 7500.00 EUR\nPayment due within 30 days.",
	)
}

// TransactionsCSV is a sample CSV with a header and clean rows.
func TransactionsCSV() []byte {
	return []byte("date;account;amount;currency\n2026-11-01;FR7630001007941234567890185;1250.00;EUR\n2026-11-02;FR7630004000031234567890143;-89.90;EUR\n2026-11-03;FR7610107001011234567890129;4200.00;EUR\n")
}
