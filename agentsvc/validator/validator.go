// Package validator scores extracted documents against named rules.
//
// Each rule belongs to a category (completeness, format, quality,
// consistency) and reports issues with a severity. The score starts at 100
// and loses 25 points per error, 10 per warning and 2 per info, clamped to
// 0..100. A document passes when it has no error and its score reaches the
// threshold (default 70).
package validator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ca-a2a/ca-a2a/agentsvc/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/skill"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// Severities.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
	SeverityInfo    = "info"
)

var weights = map[string]int{SeverityError: 25, SeverityWarning: 10, SeverityInfo: 2}

// Issue is one finding.
type Issue struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// Report is validate_document's result.
type Report struct {
	Score  int     `json:"score"`
	Passed bool    `json:"passed"`
	Issues []Issue `json:"issues"`
}

// Rule describes a rule (get_validation_rules).
type Rule struct {
	ID          string `json:"id"`
	Category    string `json:"category"`
	AppliesTo   string `json:"applies_to"`
	Severity    string `json:"severity"`
	Description string `json:"description"`
}

// Rules lists every rule this package applies.
var Rules = []Rule{
	{"csv.header_required", "completeness", "csv", SeverityError, "The first row is a header with no empty column name."},
	{"csv.header_unique", "consistency", "csv", SeverityError, "Column names are unique."},
	{"csv.has_data_rows", "completeness", "csv", SeverityError, "At least one data row follows the header."},
	{"csv.ragged_rows", "format", "csv", SeverityWarning, "Every row has as many fields as the header (error when over 10% of rows differ)."},
	{"csv.empty_cells_ratio", "quality", "csv", SeverityWarning, "At most 10% of cells are empty (error above 50%)."},
	{"csv.duplicate_rows", "quality", "csv", SeverityInfo, "No row appears twice."},
	{"pdf.has_pages", "completeness", "pdf", SeverityError, "The document has at least one page."},
	{"pdf.page_count_consistent", "consistency", "pdf", SeverityError, "page_count equals the number of pages."},
	{"pdf.empty_pages", "quality", "pdf", SeverityWarning, "No page is without text (error when every page is)."},
	{"pdf.min_text_length", "quality", "pdf", SeverityWarning, "The document holds at least 50 characters of text."},
}

// Options configure a Validator.
type Options struct {
	// PassThreshold is the least score that passes (default 70).
	PassThreshold int
}

// Validator offers validate_document and get_validation_rules.
type Validator struct{ opts Options }

// New returns a Validator.
func New(opts Options) *Validator {
	if opts.PassThreshold <= 0 || opts.PassThreshold > 100 {
		opts.PassThreshold = 70
	}
	return &Validator{opts: opts}
}

// Methods returns the validator's methods.
func (v *Validator) Methods() []skill.Method {
	return []skill.Method{
		{Name: "validate_document", Description: "Score extracted data against the rules: {document_type, extracted_data}.", Handler: v.validateDocument},
		{Name: "get_validation_rules", Description: "The rules, their severities and the pass threshold.", Handler: v.getRules},
	}
}

func (v *Validator) getRules(_ context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	return map[string]any{"rules": Rules, "pass_threshold": v.opts.PassThreshold}, nil
}

func (v *Validator) validateDocument(_ context.Context, params json.RawMessage) (any, error) {
	var p struct {
		DocumentType  string          `json:"document_type"`
		ExtractedData json.RawMessage `json:"extracted_data"`
	}
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if len(p.ExtractedData) == 0 || p.ExtractedData[0] != '{' {
		return nil, jsonrpc.InvalidParams("extracted_data must be an object")
	}
	var issues []Issue
	switch p.DocumentType {
	case extractor.TypeCSV:
		var d extractor.CSVData
		if err := strictDecode(p.ExtractedData, &d); err != nil {
			return nil, jsonrpc.InvalidParams("extracted_data is not CSV data: %v", err)
		}
		issues = checkCSV(&d)
	case extractor.TypePDF:
		var d extractor.PDFData
		if err := strictDecode(p.ExtractedData, &d); err != nil {
			return nil, jsonrpc.InvalidParams("extracted_data is not PDF data: %v", err)
		}
		issues = checkPDF(&d)
	default:
		return nil, jsonrpc.InvalidParams("unsupported document_type %q: want pdf or csv", p.DocumentType)
	}
	return v.Score(issues), nil
}

// Score turns issues into a report.
func (v *Validator) Score(issues []Issue) Report {
	score, hasError := 100, false
	for _, is := range issues {
		score -= weights[is.Severity]
		hasError = hasError || is.Severity == SeverityError
	}
	score = max(0, min(100, score))
	if issues == nil {
		issues = []Issue{}
	}
	return Report{Score: score, Passed: !hasError && score >= v.opts.PassThreshold, Issues: issues}
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func checkCSV(d *extractor.CSVData) []Issue {
	var out []Issue
	add := func(rule, sev, format string, args ...any) {
		out = append(out, Issue{Rule: rule, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	empty := 0
	seen := map[string]bool{}
	for i, h := range d.Headers {
		name := strings.TrimSpace(h)
		if name == "" {
			empty++
			continue
		}
		if seen[strings.ToLower(name)] {
			add("csv.header_unique", SeverityError, "column %d repeats the name %q", i+1, name)
		}
		seen[strings.ToLower(name)] = true
	}
	if len(d.Headers) == 0 || empty > 0 {
		add("csv.header_required", SeverityError, "%d of %d column names are empty", empty, len(d.Headers))
	}
	if len(d.Rows) == 0 {
		add("csv.has_data_rows", SeverityError, "no data rows after the header")
		return out
	}
	ragged, cells, emptyCells, dups := 0, 0, 0, 0
	rows := map[string]bool{}
	for _, r := range d.Rows {
		if len(r) != len(d.Headers) {
			ragged++
		}
		for _, c := range r {
			cells++
			if strings.TrimSpace(c) == "" {
				emptyCells++
			}
		}
		key := strings.Join(r, "\x1f")
		if rows[key] {
			dups++
		}
		rows[key] = true
	}
	if ragged > 0 {
		sev := SeverityWarning
		if ragged*10 > len(d.Rows) {
			sev = SeverityError
		}
		add("csv.ragged_rows", sev, "%d of %d rows do not have %d fields", ragged, len(d.Rows), len(d.Headers))
	}
	if cells > 0 {
		ratio := float64(emptyCells) / float64(cells)
		switch {
		case ratio > 0.5:
			add("csv.empty_cells_ratio", SeverityError, "%.0f%% of cells are empty", ratio*100)
		case ratio > 0.1:
			add("csv.empty_cells_ratio", SeverityWarning, "%.0f%% of cells are empty", ratio*100)
		}
	}
	if dups > 0 {
		add("csv.duplicate_rows", SeverityInfo, "%d duplicate rows", dups)
	}
	return out
}

func checkPDF(d *extractor.PDFData) []Issue {
	var out []Issue
	add := func(rule, sev, format string, args ...any) {
		out = append(out, Issue{Rule: rule, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	if len(d.Pages) == 0 {
		add("pdf.has_pages", SeverityError, "the document has no pages")
		return out
	}
	if d.PageCount != len(d.Pages) {
		add("pdf.page_count_consistent", SeverityError, "page_count is %d but %d pages were extracted", d.PageCount, len(d.Pages))
	}
	empty, chars := 0, 0
	for _, p := range d.Pages {
		n := len(strings.TrimSpace(p.Text))
		chars += n
		if n == 0 {
			empty++
		}
	}
	switch {
	case empty == len(d.Pages):
		add("pdf.empty_pages", SeverityError, "no page holds any text (scanned image?)")
	case empty > 0:
		add("pdf.empty_pages", SeverityWarning, "%d of %d pages hold no text", empty, len(d.Pages))
	}
	if chars < 50 && empty < len(d.Pages) {
		add("pdf.min_text_length", SeverityWarning, "only %d characters of text", chars)
	}
	return out
}
