package extractor

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/ca-a2a/ca-a2a/internal/sandbox"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

const (
	// maxRows bounds the data rows read from one CSV.
	maxRows = 200_000
	// maxCells bounds the fields of one CSV, header included: a 20 MiB
	// line of delimiters would otherwise be 20 million strings.
	maxCells = 4_000_000
	// sniffLines and sniffBytes bound the sample delimiter detection reads.
	sniffLines = 20
	sniffBytes = 64 << 10
)

// delimiters are the candidates, in order of preference on a tie.
var delimiters = []rune{',', ';', '\t'}

var utf8BOM = []byte("\xef\xbb\xbf")

var (
	errEmpty   = errors.New("empty document")
	errNotText = errors.New("unsupported document type: content is not text")
	errNotUTF8 = errors.New("malformed CSV: not valid UTF-8")
)

// writeCSV writes the extracted_data of a CSV (agentapi.CSVData) to out, row
// by row as the records are read: a UTF-8 BOM is dropped, the delimiter
// detected, the first record is the header and the rest are rows, which may
// be ragged. It runs in a worker process; an error is the reason the
// document cannot be parsed, or the writer's refusal to pass the output
// limit.
func writeCSV(data []byte, out io.Writer) error {
	data = bytes.TrimPrefix(data, utf8BOM)
	if len(bytes.TrimSpace(data)) == 0 {
		return errEmpty
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return errNotText
	}
	if !utf8.Valid(data) {
		return errNotUTF8
	}
	delim := detectDelimiter(data)
	// Every field but a record's first follows a delimiter, and every
	// record but the first follows a newline: this bounds the fields before
	// encoding/csv builds a record, which it does whole, however long.
	if bytes.Count(data, []byte(string(delim)))+bytes.Count(data, []byte("\n"))+1 > maxCells {
		return fmt.Errorf("CSV has more than %d fields", maxCells)
	}
	if n := longestRecord(data); n > agentapi.MaxExtractedDataBytes {
		return fmt.Errorf("%w: a record of %d bytes", sandbox.ErrOutputTooLarge, n)
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = delim
	r.FieldsPerRecord = -1
	// Each record is written before the next is read.
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return csvError(err)
	}
	columns := len(header)
	j := newJSONWriter(out)
	j.raw(`{"headers":`)
	j.strs(header)
	j.raw(`,"rows":[`)
	rows := 0
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return csvError(err)
		}
		if rows == maxRows {
			return fmt.Errorf("CSV has more than %d rows", maxRows)
		}
		if rows > 0 {
			j.raw(",")
		}
		rows++
		if j.strs(rec); j.err != nil {
			return j.err
		}
	}
	j.raw(`],"row_count":`)
	j.int(rows)
	j.raw(`,"column_count":`)
	j.int(columns)
	j.raw(`,"delimiter":`)
	j.str(string(delim))
	j.raw("}")
	return j.flush()
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("malformed CSV at line %d: %v", pe.Line, pe.Err)
	}
	return errors.New("malformed CSV")
}

// longestRecord returns the length in bytes of the longest record of data,
// a newline inside double quotes belonging to its record as encoding/csv
// reads it. Every byte of a record becomes at least one byte of its JSON,
// so a record longer than the data limit can never be written: refusing it
// before encoding/csv reads it keeps that reader from building it whole (in
// three copies, which for a 20 MiB field meet the worker's memory limit).
// A bare quote in a malformed file can only make a record look longer.
func longestRecord(data []byte) int {
	longest, start, quoted := 0, 0, false
	for i, c := range data {
		switch {
		case c == '"':
			quoted = !quoted
		case c == '\n' && !quoted:
			longest, start = max(longest, i-start), i+1
		}
	}
	return max(longest, len(data)-start)
}

// detectDelimiter picks the candidate under which the first lines agree
// best on one field count greater than 1: the score is the number of records
// with the most common such count. Ties go to the earlier candidate, and ','
// wins when no candidate splits anything.
func detectDelimiter(data []byte) rune {
	sample := data[:min(len(data), sniffBytes)]
	best, bestScore := delimiters[0], 0
	for _, d := range delimiters {
		r := csv.NewReader(bytes.NewReader(sample))
		// The sample may end inside a quoted field; read leniently here,
		// strictly in ExtractCSV.
		r.Comma, r.FieldsPerRecord, r.LazyQuotes = d, -1, true
		counts := map[int]int{}
		for range sniffLines {
			rec, err := r.Read()
			if err != nil {
				break
			}
			counts[len(rec)]++
		}
		score := 0
		for n, c := range counts {
			if n > 1 && c > score {
				score = c
			}
		}
		if score > bestScore {
			best, bestScore = d, score
		}
	}
	return best
}
