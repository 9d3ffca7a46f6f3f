package validator_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ca-a2a/ca-a2a/agentsvc/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/validator"
	"github.com/ca-a2a/ca-a2a/internal/samples"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

func validate(t *testing.T, docType string, data any) (validator.Report, error) {
	t.Helper()
	params, _ := json.Marshal(map[string]any{"document_type": docType, "extracted_data": data})
	out, err := validator.New(validator.Options{}).Methods()[0].Handler(t.Context(), params)
	if err != nil {
		return validator.Report{}, err
	}
	return out.(validator.Report), nil
}

func rules(r validator.Report) string {
	var s []string
	for _, i := range r.Issues {
		s = append(s, i.Rule+":"+i.Severity)
	}
	return strings.Join(s, ",")
}

func TestValidate(t *testing.T) {
	invoice, _ := extractor.ExtractPDF(samples.Invoice())
	tx, _ := extractor.ExtractCSV(samples.TransactionsCSV())
	csvOf := func(s string) *extractor.CSVData { d, _ := extractor.ExtractCSV([]byte(s)); return d }
	tests := []struct {
		name    string
		docType string
		data    any
		score   int
		passed  bool
		issues  string
	}{
		{"clean invoice", "pdf", invoice, 100, true, ""},
		{"clean CSV", "csv", tx, 100, true, ""},
		{"no pages", "pdf", &extractor.PDFData{Pages: []extractor.Page{}}, 75, false, "pdf.has_pages:error"},
		{"blank scan", "pdf", &extractor.PDFData{PageCount: 2, Pages: []extractor.Page{{Number: 1, Text: ""}, {Number: 2, Text: " "}}}, 75, false, "pdf.empty_pages:error"},
		{"one blank page, short text", "pdf", &extractor.PDFData{PageCount: 2, Pages: []extractor.Page{{Number: 1, Text: "hi"}, {Number: 2, Text: ""}}}, 80, true, "pdf.empty_pages:warning,pdf.min_text_length:warning"},
		{"page count lies", "pdf", &extractor.PDFData{PageCount: 3, Pages: invoice.Pages}, 75, false, "pdf.page_count_consistent:error"},
		{"header only", "csv", csvOf("a,b\n"), 75, false, "csv.has_data_rows:error"},
		{"empty and duplicate header", "csv", csvOf("a,,a\n1,2,3\n"), 50, false, "csv.header_unique:error,csv.header_required:error"},
		{"ragged rows", "csv", csvOf("a,b\n1,2\n1,2,3\n4,5\n"), 75, false, "csv.ragged_rows:error"},
		{"duplicate rows", "csv", csvOf("a,b\n1,2\n1,2\n"), 98, true, "csv.duplicate_rows:info"},
		{"many empty cells", "csv", csvOf("a,b\n1,\n,2\n3,4\n5,6\n"), 90, true, "csv.empty_cells_ratio:warning"},
		{"mostly empty cells", "csv", csvOf("a,b,c\n1,,\n,,3\n"), 75, false, "csv.empty_cells_ratio:error"},
	}
	for _, tc := range tests {
		r, err := validate(t, tc.docType, tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Score != tc.score || r.Passed != tc.passed || rules(r) != tc.issues {
			t.Errorf("%s: score %d passed %v issues %q; want %d %v %q", tc.name, r.Score, r.Passed, rules(r), tc.score, tc.passed, tc.issues)
		}
	}
}

func TestInvalidParams(t *testing.T) {
	for name, params := range map[string]string{
		"unknown type":       `{"document_type":"docx","extracted_data":{}}`,
		"data not an object": `{"document_type":"csv","extracted_data":[1]}`,
		"wrong shape":        `{"document_type":"csv","extracted_data":{"pages":[]}}`,
		"unknown field":      `{"document_type":"csv","extracted_data":{},"x":1}`,
		"missing data":       `{"document_type":"csv"}`,
	} {
		_, err := validator.New(validator.Options{}).Methods()[0].Handler(t.Context(), json.RawMessage(params))
		if jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("%s: err %v", name, err)
		}
	}
}
