package validator_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/extractor/pdftest"
	"github.com/ca-a2a/ca-a2a/agentsvc/agents/validator"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

func handler(t *testing.T, v *validator.Validator, name string) func(params string) (any, error) {
	t.Helper()
	for _, m := range v.Methods() {
		if m.Name == name {
			return func(params string) (any, error) { return m.Handler(t.Context(), json.RawMessage(params)) }
		}
	}
	t.Fatalf("no method %s", name)
	return nil
}

// validate sends data through JSON as the orchestrator does.
func validate(t *testing.T, v *validator.Validator, docType string, data any) (agentapi.ValidationReport, error) {
	t.Helper()
	params, err := json.Marshal(map[string]any{"document_type": docType, "extracted_data": data})
	if err != nil {
		t.Fatal(err)
	}
	out, err := handler(t, v, "validate_document")(string(params))
	if err != nil {
		return agentapi.ValidationReport{}, err
	}
	return out.(agentapi.ValidationReport), nil
}

func summary(r agentapi.ValidationReport) string {
	var s []string
	for _, i := range r.Issues {
		s = append(s, i.Rule+":"+i.Severity)
	}
	return strings.Join(s, ",")
}

// parse runs the extractor's parse in process (these documents are known
// to be benign) and decodes its data as the validator receives it.
func parse[T any](t *testing.T, kind string, doc []byte) *T {
	t.Helper()
	raw, err := extractor.Parse(kind, doc, agentapi.MaxExtractedDataBytes)
	if err != nil {
		t.Fatalf("Parse(%s, %.40q): %v", kind, doc, err)
	}
	var d T
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func csvOf(t *testing.T, s string) *agentapi.CSVData {
	t.Helper()
	return parse[agentapi.CSVData](t, "csv", []byte(s))
}

func pdfOf(t *testing.T, pages ...string) *agentapi.PDFData {
	t.Helper()
	return parse[agentapi.PDFData](t, "pdf", pdftest.Build(pages...))
}

func pdfWithInfo(t *testing.T) *agentapi.PDFData {
	t.Helper()
	d := parse[agentapi.PDFData](t, "pdf", pdftest.BuildInfo(map[string]string{"Title": "Invoice"}, longText))
	if d.Metadata["title"] != "Invoice" {
		t.Fatalf("%+v", d)
	}
	return d
}

func pages(texts ...string) *agentapi.PDFData {
	d := &agentapi.PDFData{PageCount: len(texts), Pages: []agentapi.Page{}}
	for i, s := range texts {
		d.Pages = append(d.Pages, agentapi.Page{Number: i + 1, Text: s})
	}
	return d
}

const longText = "This invoice is due within thirty days of its date of issue, by bank transfer."

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		docType string
		data    any
		issues  string
		score   int
		passed  bool
	}{
		// PDF
		{"clean invoice", "pdf", pdfOf(t, "Invoice 2026-001\nCustomer: ACME SA, 1 rue de Paris", "Total: 7500.00 EUR, due in 30 days"), "", 100, true},
		{"no pages", "pdf", pages(), "has_pages:error", 75, false},
		{"every page blank", "pdf", pages("", " \n "), "empty_pages:error", 75, false},
		{"one blank page", "pdf", pages(longText, ""), "empty_pages:warning", 90, true},
		{"short text", "pdf", pages("hi"), "min_text_length:warning", 90, true},
		{"short text and a blank page", "pdf", pages("hi", ""), "empty_pages:warning,min_text_length:warning", 80, true},
		{"page_count lies", "pdf", &agentapi.PDFData{PageCount: 3, Pages: pages(longText).Pages}, "page_count_consistent:error", 75, false},
		{"pages out of order", "pdf", &agentapi.PDFData{PageCount: 2, Pages: []agentapi.Page{{Number: 2, Text: longText}, {Number: 1, Text: longText}}}, "page_count_consistent:error", 75, false},
		{"with metadata", "pdf", pdfWithInfo(t), "", 100, true},
		{"undecodable text", "pdf", pages(longText[:40] + strings.Repeat("\uFFFD", 20)), "unreadable_text:warning", 90, true},
		{"a little undecodable text", "pdf", pages(longText + "\uFFFD"), "", 100, true},
		{"page_count without pages", "pdf", &agentapi.PDFData{PageCount: 2, Pages: []agentapi.Page{}}, "page_count_consistent:error,has_pages:error", 50, false},

		// CSV
		{"clean CSV", "csv", csvOf(t, "date;label;amount\n2026-01-02;coffee;3,50\n2026-01-03;train;42,00\n"), "", 100, true},
		{"header only", "csv", csvOf(t, "a,b\n"), "has_data_rows:error", 75, false},
		{"empty header name", "csv", csvOf(t, "a,,c\n1,2,3\n"), "header_required:error", 75, false},
		{"blank header name", "csv", csvOf(t, "a, ,c\n1,2,3\n"), "header_required:error", 75, false},
		{"no header at all", "csv", &agentapi.CSVData{Headers: []string{}, Rows: [][]string{}}, "header_required:error,has_data_rows:error", 50, false},
		{"duplicate header names", "csv", csvOf(t, "id,Name,name,id\n1,2,3,4\n"), "header_unique:error", 75, false},
		{"duplicate header names up to spaces", "csv", csvOf(t, "id,Name,name \n1,2,3\n"), "header_unique:error,untrimmed_values:info", 73, false},
		{"untrimmed values", "csv", csvOf(t, "a,b\n 1,2\n3,4 \n5,6\n"), "untrimmed_values:info", 98, true},
		{"untrimmed header without rows", "csv", csvOf(t, "a , b\n"), "has_data_rows:error,untrimmed_values:info", 73, false},
		{"empty and duplicate header", "csv", csvOf(t, "a,,a\n1,2,3\n"), "header_required:error,header_unique:error", 50, false},
		{"one ragged row in many", "csv", csvOf(t, "a,b\n1,2\n3,4\n5,6\n7,8\n9,10\n11,12\n13,14\n15,16\n17,18\n19,20\n21\n"), "ragged_rows:warning", 90, true},
		{"mostly ragged rows", "csv", csvOf(t, "a,b\n1\n2\n3,4,5\n"), "ragged_rows:error", 75, false},
		{"empty cells over 10%", "csv", csvOf(t, "a,b\n1,\n,2\n3,4\n5,6\n"), "empty_cells_ratio:warning", 90, true},
		{"empty cells over 50%", "csv", csvOf(t, "a,b,c\n1,,\n,,3\n"), "empty_cells_ratio:error", 75, false},
		{"duplicate rows", "csv", csvOf(t, "a,b\n1,2\n1,2\n3,4\n"), "duplicate_rows:warning", 90, true},
		{"cells joined differently are not duplicates", "csv", &agentapi.CSVData{Headers: []string{"a", "b"}, Rows: [][]string{{"1,2", "3"}, {"1", "2,3"}}, RowCount: 2, ColumnCount: 2}, "", 100, true},
		{"counts lie", "csv", &agentapi.CSVData{Headers: []string{"a"}, Rows: [][]string{{"1"}}, RowCount: 5, ColumnCount: 1}, "row_count_consistent:error", 75, false},
		{"everything wrong", "csv", &agentapi.CSVData{Headers: []string{"a", "a", ""}, Rows: [][]string{{"", ""}, {"", ""}, {"", ""}}, RowCount: 3, ColumnCount: 3},
			"header_required:error,header_unique:error,ragged_rows:error,empty_cells_ratio:error,duplicate_rows:warning", 0, false},
	}
	v := validator.New(validator.Options{})
	seen := map[string]bool{}
	for _, tc := range tests {
		r, err := validate(t, v, tc.docType, tc.data)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if r.Score != tc.score || r.Passed != tc.passed || summary(r) != tc.issues {
			t.Errorf("%s: score %d passed %v issues %q; want %d %v %q", tc.name, r.Score, r.Passed, summary(r), tc.score, tc.passed, tc.issues)
		}
		for _, is := range r.Issues {
			seen[is.Rule] = true
			if is.Message == "" {
				t.Errorf("%s: %s has no message", tc.name, is.Rule)
			}
		}
	}
	// Every listed rule is exercised, and nothing unlisted is reported.
	listed := map[string]bool{}
	for _, r := range validator.Rules {
		listed[r.ID] = true
		if !seen[r.ID] {
			t.Errorf("rule %s is never triggered by the table", r.ID)
		}
	}
	for id := range seen {
		if !listed[id] {
			t.Errorf("rule %s is reported but not listed", id)
		}
	}
}

func TestThreshold(t *testing.T) {
	short := pages("hi", "") // two warnings: score 80, no error
	tests := []struct {
		threshold int
		passed    bool
	}{
		{0, true}, // default 70
		{80, true},
		{81, false},
		{100, false},
		{101, true}, // out of range: default
		{-5, true},
	}
	for _, tc := range tests {
		r, err := validate(t, validator.New(validator.Options{PassThreshold: tc.threshold}), "pdf", short)
		if err != nil || r.Score != 80 || r.Passed != tc.passed {
			t.Errorf("threshold %d: %+v %v, want passed %v", tc.threshold, r, err, tc.passed)
		}
	}
}

func TestInvalidParams(t *testing.T) {
	v := validator.New(validator.Options{})
	tests := map[string]string{
		"unknown type":             `{"document_type":"docx","extracted_data":{}}`,
		"type case":                `{"document_type":"PDF","extracted_data":{"pages":[],"page_count":0}}`,
		"no type":                  `{"extracted_data":{"pages":[],"page_count":0}}`,
		"missing data":             `{"document_type":"csv"}`,
		"null data":                `{"document_type":"csv","extracted_data":null}`,
		"data not an object":       `{"document_type":"csv","extracted_data":[1]}`,
		"empty object for csv":     `{"document_type":"csv","extracted_data":{}}`,
		"PDF data typed as csv":    `{"document_type":"csv","extracted_data":{"pages":[],"page_count":0}}`,
		"CSV data typed as pdf":    `{"document_type":"pdf","extracted_data":{"headers":["a"],"rows":[],"row_count":0,"column_count":1,"delimiter":","}}`,
		"missing page_count":       `{"document_type":"pdf","extracted_data":{"pages":[]}}`,
		"null pages":               `{"document_type":"pdf","extracted_data":{"pages":null,"page_count":0}}`,
		"wrong member type":        `{"document_type":"csv","extracted_data":{"headers":"a","rows":[],"row_count":0,"column_count":1}}`,
		"wrong nested type":        `{"document_type":"pdf","extracted_data":{"pages":[{"number":"1","text":""}],"page_count":1}}`,
		"unknown nested member":    `{"document_type":"pdf","extracted_data":{"pages":[{"number":1,"text":"","x":1}],"page_count":1}}`,
		"unknown top-level member": `{"document_type":"csv","extracted_data":{},"x":1}`,
	}
	for name, params := range tests {
		_, err := handler(t, v, "validate_document")(params)
		if jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("%s: err %v, want -32602", name, err)
		}
	}
}

func TestGetValidationRules(t *testing.T) {
	out, err := handler(t, validator.New(validator.Options{PassThreshold: 80}), "get_validation_rules")("{}")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	var got struct {
		Rules []struct {
			ID, Category, Severity, Description string
			AppliesTo                           string `json:"applies_to"`
		}
		Weights       map[string]int
		PassThreshold int `json:"pass_threshold"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.PassThreshold != 80 || got.Weights["error"] != 25 || got.Weights["warning"] != 10 || got.Weights["info"] != 2 || len(got.Rules) != len(validator.Rules) {
		t.Fatalf("rules result %s", b)
	}
	if !strings.Contains(string(b), `"applies_to":"csv"`) || !strings.Contains(string(b), `"id":"header_required"`) {
		t.Fatalf("wire names: %s", b)
	}
	categories := map[string]bool{"completeness": true, "format": true, "quality": true, "consistency": true}
	for _, r := range got.Rules {
		if !categories[r.Category] || (r.AppliesTo != "csv" && r.AppliesTo != "pdf") || r.Description == "" ||
			(r.Severity != "error" && r.Severity != "warning" && r.Severity != "info") {
			t.Errorf("rule %+v", r)
		}
	}
	if _, err := handler(t, validator.New(validator.Options{}), "get_validation_rules")(`{"x":1}`); jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
		t.Errorf("unknown field: %v", err)
	}
}

func FuzzValidateDocument(f *testing.F) {
	f.Add(`{"document_type":"csv","extracted_data":{"headers":["a"],"rows":[["1"]],"row_count":1,"column_count":1,"delimiter":","}}`)
	f.Add(`{"document_type":"pdf","extracted_data":{"pages":[{"number":1,"text":"x"}],"page_count":1}}`)
	v := validator.New(validator.Options{})
	f.Fuzz(func(t *testing.T, params string) {
		m := v.Methods()[0]
		out, err := m.Handler(t.Context(), json.RawMessage(params))
		if err != nil {
			if jsonrpc.CodeOf(err) != jsonrpc.CodeInvalidParams {
				t.Fatalf("error %v is not -32602", err)
			}
			return
		}
		r := out.(agentapi.ValidationReport)
		if r.Score < 0 || r.Score > 100 || r.Issues == nil {
			t.Fatalf("report %+v", r)
		}
	})
}

// TestReportIsBounded: whatever the document, a report's messages, issues
// and encoding stay within the bounds that let it travel with the
// extracted data to the archivist (agentapi.MaxValidationReportBytes).
func TestReportIsBounded(t *testing.T) {
	// Column names as long as the extracted data allows, of the characters
	// that JSON escapes the most: control characters, invalid UTF-8,
	// quotes, and <, > and & (escaped by encoders that escape HTML).
	huge := func(c string) string { return strings.Repeat(c, 150<<10/len(c)) }
	var headers []string
	for _, c := range []string{"\x01", "\xff", `"`, "<&>", "é"} {
		headers = append(headers, huge(c), " "+huge(c)+" ")
	}
	v := validator.New(validator.Options{})
	r, err := validate(t, v, "csv", &agentapi.CSVData{Headers: headers, Rows: [][]string{{"1"}}, RowCount: 1, ColumnCount: len(headers)})
	if err != nil {
		t.Fatal(err)
	}
	repeated := func(r agentapi.ValidationReport) string {
		for _, is := range r.Issues {
			if is.Rule == validator.RuleHeaderUnique {
				return is.Message
			}
		}
		return ""
	}
	if m := repeated(r); !strings.HasPrefix(m, `repeated column names: "\x01\x01`) || !strings.HasSuffix(m, "…") {
		t.Errorf("repeated-header message: %q", m)
	}
	// Long names of printable characters: five of them, each cut.
	long, err := validate(t, v, "csv", &agentapi.CSVData{Headers: []string{huge("a"), huge("a"), huge("b"), huge("b"), huge("c"), huge("c"),
		huge("d"), huge("d"), huge("é"), huge("é"), huge("f"), huge("f")}, Rows: [][]string{{"1"}}, RowCount: 1, ColumnCount: 12})
	if err != nil {
		t.Fatal(err)
	}
	name := func(c string) string { return strings.Repeat(c, (40-len("…"))/len(c)) + "…" }
	if m, want := repeated(long), fmt.Sprintf(`repeated column names: %q, %q, %q, %q, %q`, name("a"), name("b"), name("c"), name("d"), name("é")); m != want {
		t.Errorf("repeated-header message:\n%s\nwant\n%s", m, want)
	}
	// Score itself bounds whatever issues it is given.
	var many []agentapi.ValidationIssue
	for range 40 {
		many = append(many, agentapi.ValidationIssue{Rule: validator.RuleUntrimmedValues, Severity: validator.SeverityInfo, Message: huge("\x01")})
	}
	scored := v.Score(many)
	if scored.Score != 20 || len(many[0].Message) != len(huge("\x01")) {
		t.Errorf("every issue counts, and the caller's issues are left alone: score %d", scored.Score)
	}
	for name, rep := range map[string]agentapi.ValidationReport{"validate_document": r, "Score": scored} {
		if len(rep.Issues) == 0 || len(rep.Issues) > agentapi.MaxValidationIssues {
			t.Errorf("%s: %d issues", name, len(rep.Issues))
		}
		for _, is := range rep.Issues {
			if len(is.Message) > agentapi.MaxIssueMessageBytes || !utf8.ValidString(is.Message) {
				t.Errorf("%s: a message of %d bytes, valid UTF-8 %v", name, len(is.Message), utf8.ValidString(is.Message))
			}
		}
		for _, enc := range []func(any) ([]byte, error){jsonrpc.Marshal, json.Marshal} {
			b, err := enc(rep)
			if err != nil || len(b) > agentapi.MaxValidationReportBytes {
				t.Errorf("%s: the report encodes in %d bytes (%v), over %d", name, len(b), err, agentapi.MaxValidationReportBytes)
			}
		}
	}
}
