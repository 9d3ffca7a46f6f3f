// Package pdftest builds small, valid PDF documents for tests and the demo.
//
// Build writes a PDF 1.4 file by hand: catalog, page tree, one Helvetica
// font with WinAnsiEncoding, one page and one content stream per page, and a
// cross-reference table with exact byte offsets, so strict readers accept it.
// Assemble and Stream write other shapes with the same care.
package pdftest

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Build returns a PDF with one page per string. Lines within a page are
// separated by "\n"; each is drawn as one text line. Characters outside
// Latin-1 are written as "?" since the font's encoding cannot show them.
func Build(pages ...string) []byte { return BuildInfo(nil, pages...) }

// BuildInfo is Build with a document information dictionary holding info
// (e.g. "Title": "Invoice"), written as PDF text strings.
func BuildInfo(info map[string]string, pages ...string) []byte {
	// Objects: 1 catalog, 2 page tree, 3 font, then page i at 4+2i and its
	// content stream at 5+2i, then the information dictionary.
	kids := make([]string, len(pages))
	for i := range pages {
		kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
	}
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages)),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
	}
	for i, text := range pages {
		objs = append(objs, fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i))
		var content bytes.Buffer
		content.WriteString("BT\n/F1 12 Tf\n14 TL\n72 720 Td\n")
		for _, line := range strings.Split(text, "\n") {
			content.WriteByte('(')
			content.Write(encodeString(line))
			content.WriteString(") Tj T*\n")
		}
		content.WriteString("ET")
		objs = append(objs, Stream("", content.Bytes()))
	}
	trailer := ""
	if len(info) > 0 {
		keys := make([]string, 0, len(info))
		for k := range info {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var d bytes.Buffer
		d.WriteString("<<")
		for _, k := range keys {
			fmt.Fprintf(&d, " /%s (%s)", k, encodeString(info[k]))
		}
		d.WriteString(" >>")
		objs = append(objs, d.String())
		trailer = fmt.Sprintf("/Info %d 0 R", len(objs))
	}
	return Assemble(trailer, objs...)
}

// Stream returns a stream object holding data, with the dictionary entries
// in dict (e.g. "/Filter /FlateDecode") and the right /Length.
func Stream(dict string, data []byte) string {
	if dict != "" {
		dict += " "
	}
	return fmt.Sprintf("<< %s/Length %d >>\nstream\n%s\nendstream", dict, len(data), data)
}

// Assemble writes a PDF 1.4 file whose objects 1, 2, ... are objects (their
// bodies, without "N 0 obj"), object 1 being the catalog, followed by a
// cross-reference table with exact offsets and a trailer holding /Size,
// /Root and the entries in trailer. Tests use it to build documents that are
// well-formed on the outside and hostile inside.
func Assemble(trailer string, objects ...string) []byte {
	var b bytes.Buffer
	// The second line's high bytes mark the file as binary for transfer tools.
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, body := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, body)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		// Each entry is exactly 20 bytes: 10-digit offset, 5-digit
		// generation, type, and a two-byte end of line.
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	if trailer != "" {
		trailer = " " + trailer
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, trailer, xref)
	return b.Bytes()
}

// encodeString writes s as the body of a PDF literal string in Latin-1,
// escaping the delimiters and the backslash.
func encodeString(s string) []byte {
	var out []byte
	for _, r := range s {
		switch {
		case r == '\\' || r == '(' || r == ')':
			out = append(out, '\\', byte(r))
		case r == '\r' || r == '\t':
			out = append(out, ' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r > 0xff:
			out = append(out, '?')
		default:
			out = append(out, byte(r))
		}
	}
	return out
}
