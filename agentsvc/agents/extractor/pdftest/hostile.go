package pdftest

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/adler32"
	"strings"
)

// Hostile documents: each is well-formed on the outside (a header, objects,
// a cross-reference section and a trailer with exact offsets) and built to
// make a PDF reader that trusts it allocate without bound, loop forever or
// recurse without end. Tests feed them to the extractor, which must answer
// cleanly and stay alive; none is a valid document.

// catalog is a page tree of one empty page, so that a reader that survives
// the hostile part finds a document to read.
var catalog = []string{
	"<< /Type /Catalog /Pages 2 0 R >>",
	"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
	"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
}

// XrefEntryAt returns a PDF whose cross-reference table has a subsection
// starting at object number first (say 1<<40 - 8): a reader that sizes its
// table from the largest object number asks for terabytes.
func XrefEntryAt(first int64) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := writeObjects(&b, catalog)
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "%d 1\n%010d 00000 n \n", first, offsets[0])
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}

// XrefStreamSize returns a PDF 1.5 file whose cross-reference stream
// declares /Size size (say 4 000 000 000): a reader that allocates its table
// from /Size asks for hundreds of GiB.
func XrefStreamSize(size int64) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n")
	offsets := writeObjects(&b, catalog)
	entries := [][3]int64{{0, 0, 65535}}
	for _, off := range offsets {
		entries = append(entries, [3]int64{1, int64(off), 0})
	}
	xref := b.Len()
	entries = append(entries, [3]int64{1, int64(xref), 0})
	writeXrefStream(&b, len(offsets)+1, entries, fmt.Sprintf("/Size %d /Index [0 %d] /Root 1 0 R", size, len(entries)))
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", xref)
	return b.Bytes()
}

// PrevCycle returns a PDF with steps cross-reference sections whose /Prev
// entries form a cycle: with one step the trailer's /Prev points at its own
// section, with two the sections point at each other. A reader that follows
// /Prev without remembering where it has been never stops.
func PrevCycle(steps int) []byte {
	if steps < 1 {
		steps = 1
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := writeObjects(&b, catalog)
	// Every section has the same length (fixed-width /Prev), so the
	// offsets of all of them are known before any is written.
	section := func(prev int) string {
		var s strings.Builder
		fmt.Fprintf(&s, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
		for _, off := range offsets {
			fmt.Fprintf(&s, "%010d 00000 n \n", off)
		}
		fmt.Fprintf(&s, "trailer\n<< /Size %d /Root 1 0 R /Prev %010d >>\n", len(offsets)+1, prev)
		return s.String()
	}
	first := b.Len()
	length := len(section(0))
	for i := range steps {
		next := first + ((i+1)%steps)*length
		b.WriteString(section(next))
	}
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", first)
	return b.Bytes()
}

// NestedArrays returns a PDF whose catalog holds depth nested arrays, never
// closed: a recursive reader without a depth limit overflows its stack.
func NestedArrays(depth int) []byte {
	return Assemble("", "<< /Type /Catalog /Pages 2 0 R /Nest "+strings.Repeat("[", depth)+" >>", catalog[1], catalog[2])
}

// NestedDicts is NestedArrays with dictionaries (<< /A << /A ...).
func NestedDicts(depth int) []byte {
	return Assemble("", "<< /Type /Catalog /Pages 2 0 R /Nest "+strings.Repeat("<< /A ", depth)+" >>", catalog[1], catalog[2])
}

// FlateBomb returns a one-page PDF whose content stream is FlateDecode data
// inflating to inflated bytes (say 1 GiB) of text-showing operators, from
// about a thousandth of that. It is built from one compressed chunk
// repeated, so even a GiB costs little to make.
func FlateBomb(inflated int64) []byte {
	const chunkSize = 1 << 20
	line := "(" + strings.Repeat("A", 1000) + ") Tj\n"
	chunk := []byte(strings.Repeat(line, chunkSize/len(line)+1)[:chunkSize])
	head, tail := []byte("BT /F1 12 Tf 72 720 Td\n"), []byte("\nET")
	n := max((inflated-int64(len(head)+len(tail)))/chunkSize, 1)

	sum := adler32.New()
	var z bytes.Buffer
	z.Write([]byte{0x78, 0xda}) // zlib header: deflate, 32 KiB window, best compression
	z.Write(deflateBlocks(head, false))
	sum.Write(head)
	body := deflateBlocks(chunk, false)
	for range n {
		z.Write(body)
		sum.Write(chunk)
	}
	z.Write(deflateBlocks(tail, true))
	sum.Write(tail)
	z.Write(binary.BigEndian.AppendUint32(nil, sum.Sum32()))
	return Assemble("",
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
		Stream("/Filter /FlateDecode", z.Bytes()),
	)
}

// deflateBlocks compresses data on its own into deflate blocks that end on a
// byte boundary (a sync flush), so that such pieces can be concatenated into
// one stream: no back-reference reaches outside its piece. last ends the
// stream instead.
func deflateBlocks(data []byte, last bool) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(data)
	if last {
		w.Close()
	} else {
		w.Flush()
	}
	return b.Bytes()
}

// ObjectStreamInItself returns a PDF 1.5 file whose catalog (object 4) is
// stored in object stream 3, and whose cross-reference stream says that
// object stream 3 is itself stored in object stream 3. A reader resolving
// the catalog recurses without end.
func ObjectStreamInItself() []byte {
	return objectStreamPDF("", [3]int64{2, 3, 0})
}

// ObjectStreamExtendsItself returns a PDF 1.5 file whose catalog is said to
// be in object stream 3, which does not hold it and /Extends itself: a
// reader searching the chain of extended streams never stops.
func ObjectStreamExtendsItself() []byte {
	return objectStreamPDF("/Extends 3 0 R", [3]int64{})
}

// objectStreamPDF writes a page tree (objects 1 and 2), object stream 3
// (with extra dictionary entries) holding the catalog as object 4, unless
// extra is set, when it holds an unrelated object 9, and a
// cross-reference stream (object 5) that puts object 4 in stream 3 and,
// when self is set, gives self as object 3's entry instead of its offset.
func objectStreamPDF(extra string, self [3]int64) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n")
	offsets := writeObjects(&b, []string{
		"<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 1 0 R /MediaBox [0 0 612 792] >>",
	})
	inner := "4 0 << /Type /Catalog /Pages 1 0 R >>"
	if extra != "" {
		inner = "9 0 << >>"
	}
	stm := b.Len()
	fmt.Fprintf(&b, "3 0 obj\n%s\nendobj\n", Stream("/Type /ObjStm /N 1 /First 4 "+extra, []byte(inner)))
	xref := b.Len()
	entry3 := [3]int64{1, int64(stm), 0}
	if self != ([3]int64{}) {
		entry3 = self
	}
	entries := [][3]int64{
		{0, 0, 65535},
		{1, int64(offsets[0]), 0},
		{1, int64(offsets[1]), 0},
		entry3,
		{2, 3, 0}, // object 4, the catalog, is in object stream 3
		{1, int64(xref), 0},
	}
	writeXrefStream(&b, 5, entries, fmt.Sprintf("/Size %d /Root 4 0 R", len(entries)))
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", xref)
	return b.Bytes()
}

// writeObjects writes bodies as objects 1, 2, ... and returns their offsets.
func writeObjects(b *bytes.Buffer, bodies []string) []int {
	offsets := make([]int, len(bodies))
	for i, body := range bodies {
		offsets[i] = b.Len()
		fmt.Fprintf(b, "%d 0 obj\n%s\nendobj\n", i+1, body)
	}
	return offsets
}

// writeXrefStream writes object id, a cross-reference stream of entries
// (type, field 2, field 3) with /W [1 4 2], with dict holding /Size and the
// rest of the trailer entries.
func writeXrefStream(b *bytes.Buffer, id int, entries [][3]int64, dict string) {
	var data []byte
	for _, e := range entries {
		data = append(data, byte(e[0]))
		data = binary.BigEndian.AppendUint32(data, uint32(e[1]))
		data = binary.BigEndian.AppendUint16(data, uint16(e[2]))
	}
	fmt.Fprintf(b, "%d 0 obj\n%s\nendobj\n", id, Stream("/Type /XRef /W [1 4 2] "+dict, data))
}
