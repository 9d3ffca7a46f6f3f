package extractor

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"

	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// maxRows bounds the rows read from one CSV.
const maxRows = 200000

// ExtractCSV parses data: the first record is the header, the rest rows.
func ExtractCSV(data []byte) (*CSVData, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, jsonrpc.InvalidParams("empty document")
	}
	delim := detectDelimiter(data)
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = delim
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	header, err := r.Read()
	if err != nil {
		return nil, csvError(err)
	}
	out := &CSVData{Delimiter: string(delim), Headers: header, ColumnCount: len(header), Rows: [][]string{}}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		if len(out.Rows) == maxRows {
			return nil, jsonrpc.InvalidParams("CSV has more than %d rows", maxRows)
		}
		out.Rows = append(out.Rows, rec)
	}
	out.RowCount = len(out.Rows)
	return out, nil
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return jsonrpc.InvalidParams("malformed CSV at line %d: %v", pe.Line, pe.Err)
	}
	return jsonrpc.InvalidParams("malformed CSV")
}

// detectDelimiter picks among ',', ';' and tab the one that splits the first
// lines into the most consistent number (> 1) of fields.
func detectDelimiter(data []byte) rune {
	lines := strings.SplitN(string(data), "\n", 21)
	if len(lines) > 20 {
		lines = lines[:20]
	}
	best, bestScore := ',', -1
	for _, d := range []rune{',', ';', '\t'} {
		r := csv.NewReader(strings.NewReader(strings.Join(lines, "\n")))
		r.Comma, r.FieldsPerRecord, r.LazyQuotes = d, -1, true
		counts := map[int]int{}
		total := 0
		for {
			rec, err := r.Read()
			if err != nil {
				break
			}
			counts[len(rec)]++
			total++
		}
		// Score: lines agreeing on the most common field count, if > 1.
		score := 0
		for n, c := range counts {
			if n > 1 && c > score {
				score = c
			}
		}
		if total > 0 && score > bestScore {
			best, bestScore = d, score
		}
	}
	return best
}
