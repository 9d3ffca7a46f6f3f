package validator

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
)

// Severities of an issue.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
	SeverityInfo    = "info"
)

// Categories of a rule.
const (
	CategoryCompleteness = "completeness"
	CategoryFormat       = "format"
	CategoryQuality      = "quality"
	CategoryConsistency  = "consistency"
)

// Weights are the points one issue of each severity takes off the score of
// 100. Each rule reports at most one issue per document.
var Weights = map[string]int{SeverityError: 25, SeverityWarning: 10, SeverityInfo: 2}

// Thresholds the rules use.
const (
	// EmptyCellsWarn and EmptyCellsError are the ratios of empty cells
	// above which empty_cells_ratio warns and fails.
	EmptyCellsWarn  = 0.10
	EmptyCellsError = 0.50
	// RaggedRowsError is the ratio of ragged rows above which ragged_rows
	// is an error rather than a warning.
	RaggedRowsError = 0.10
	// MinTextLength is the least number of non-blank characters a PDF
	// with text should hold.
	MinTextLength = 50
	// UnreadableTextWarn is the share of U+FFFD among a PDF's non-blank
	// characters above which unreadable_text warns: the extractor writes
	// U+FFFD for bytes a font's encoding could not turn into text.
	UnreadableTextWarn = 0.05
)

// Rule IDs.
const (
	RuleHeaderRequired      = "header_required"
	RuleHeaderUnique        = "header_unique"
	RuleHasDataRows         = "has_data_rows"
	RuleRaggedRows          = "ragged_rows"
	RuleEmptyCellsRatio     = "empty_cells_ratio"
	RuleDuplicateRows       = "duplicate_rows"
	RuleUntrimmedValues     = "untrimmed_values"
	RuleRowCountConsistent  = "row_count_consistent"
	RuleHasPages            = "has_pages"
	RuleEmptyPages          = "empty_pages"
	RuleMinTextLength       = "min_text_length"
	RulePageCountConsistent = "page_count_consistent"
	RuleUnreadableText      = "unreadable_text"
)

// Rules lists every rule this package applies, with its usual severity.
var Rules = []agentapi.ValidationRule{
	rule(RuleHeaderRequired, CategoryCompleteness, agentapi.DocumentTypeCSV, SeverityError, "The first row is a header and no column name is empty."),
	rule(RuleHasDataRows, CategoryCompleteness, agentapi.DocumentTypeCSV, SeverityError, "At least one data row follows the header."),
	rule(RuleHeaderUnique, CategoryConsistency, agentapi.DocumentTypeCSV, SeverityError, "Column names are unique (ignoring case and surrounding spaces)."),
	rule(RuleRowCountConsistent, CategoryConsistency, agentapi.DocumentTypeCSV, SeverityError, "row_count and column_count match the rows and the header."),
	rule(RuleRaggedRows, CategoryFormat, agentapi.DocumentTypeCSV, SeverityWarning, fmt.Sprintf("Every row has as many fields as the header; an error when more than %.0f%% of rows differ.", RaggedRowsError*100)),
	rule(RuleEmptyCellsRatio, CategoryQuality, agentapi.DocumentTypeCSV, SeverityWarning, fmt.Sprintf("At most %.0f%% of cells are empty or blank; an error above %.0f%%.", EmptyCellsWarn*100, EmptyCellsError*100)),
	rule(RuleDuplicateRows, CategoryQuality, agentapi.DocumentTypeCSV, SeverityWarning, "No data row appears more than once."),
	rule(RuleUntrimmedValues, CategoryFormat, agentapi.DocumentTypeCSV, SeverityInfo, "No column name or value starts or ends with white space."),
	rule(RuleHasPages, CategoryCompleteness, agentapi.DocumentTypePDF, SeverityError, "The document has at least one page."),
	rule(RulePageCountConsistent, CategoryConsistency, agentapi.DocumentTypePDF, SeverityError, "page_count equals the number of pages, numbered 1 to page_count in order."),
	rule(RuleEmptyPages, CategoryQuality, agentapi.DocumentTypePDF, SeverityWarning, "Every page holds text; an error when no page does (a scan without text layer)."),
	rule(RuleMinTextLength, CategoryQuality, agentapi.DocumentTypePDF, SeverityWarning, fmt.Sprintf("The document holds at least %d non-blank characters of text.", MinTextLength)),
	rule(RuleUnreadableText, CategoryQuality, agentapi.DocumentTypePDF, SeverityWarning, fmt.Sprintf("At most %.0f%% of the text's characters are undecodable (U+FFFD).", UnreadableTextWarn*100)),
}

func rule(id, category, appliesTo, severity, description string) agentapi.ValidationRule {
	return agentapi.ValidationRule{ID: id, Category: category, AppliesTo: appliesTo, Severity: severity, Description: description}
}

type issues []agentapi.ValidationIssue

// add records an issue, its message cut to agentapi.MaxIssueMessageBytes:
// a message may quote the document, and the report travels with the
// extracted data under the hop limit.
func (is *issues) add(rule, severity, format string, args ...any) {
	msg := truncate(fmt.Sprintf(format, args...), agentapi.MaxIssueMessageBytes)
	*is = append(*is, agentapi.ValidationIssue{Rule: rule, Severity: severity, Message: msg})
}

// maxQuotedName bounds a column name quoted in a message: five of them
// (quoted) fit in one message of agentapi.MaxIssueMessageBytes.
const maxQuotedName = 40

// ellipsis ends a string that was cut.
const ellipsis = "…"

// truncate cuts s to at most n bytes, on a character boundary, ending it
// with an ellipsis when it was cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// CheckCSV applies the CSV rules to d.
func CheckCSV(d *agentapi.CSVData) []agentapi.ValidationIssue {
	var out issues
	empty, untrimmed := 0, 0
	seen := map[string]bool{}
	var dups []string
	for _, h := range d.Headers {
		if isUntrimmed(h) {
			untrimmed++
		}
		name := strings.TrimSpace(h)
		if name == "" {
			empty++
			continue
		}
		k := strings.ToLower(name)
		if seen[k] && len(dups) < 5 {
			dups = append(dups, fmt.Sprintf("%q", truncate(name, maxQuotedName)))
		}
		seen[k] = true
	}
	switch {
	case len(d.Headers) == 0:
		out.add(RuleHeaderRequired, SeverityError, "no header row")
	case empty > 0:
		out.add(RuleHeaderRequired, SeverityError, "%d of %d column names are empty", empty, len(d.Headers))
	}
	if len(dups) > 0 {
		out.add(RuleHeaderUnique, SeverityError, "repeated column names: %s", strings.Join(dups, ", "))
	}
	if d.RowCount != len(d.Rows) || d.ColumnCount != len(d.Headers) {
		out.add(RuleRowCountConsistent, SeverityError, "row_count %d and column_count %d, but %d rows and %d header names",
			d.RowCount, d.ColumnCount, len(d.Rows), len(d.Headers))
	}
	if len(d.Rows) == 0 {
		out.add(RuleHasDataRows, SeverityError, "no data rows after the header")
		if untrimmed > 0 {
			out.add(RuleUntrimmedValues, SeverityInfo, "%d values start or end with white space", untrimmed)
		}
		return out
	}

	ragged, cells, emptyCells, dupRows := 0, 0, 0, 0
	rows := make(map[[sha256.Size]byte]bool, len(d.Rows))
	for _, r := range d.Rows {
		if len(r) != len(d.Headers) {
			ragged++
		}
		h := sha256.New()
		for _, c := range r {
			cells++
			if strings.TrimSpace(c) == "" {
				emptyCells++
			} else if isUntrimmed(c) {
				untrimmed++
			}
			// Length-prefixed, so ["a,b"] and ["a","b"] differ.
			fmt.Fprintf(h, "%d:%s", len(c), c)
		}
		var key [sha256.Size]byte
		h.Sum(key[:0])
		if rows[key] {
			dupRows++
		}
		rows[key] = true
	}
	if ragged > 0 {
		sev := SeverityWarning
		if float64(ragged) > RaggedRowsError*float64(len(d.Rows)) {
			sev = SeverityError
		}
		out.add(RuleRaggedRows, sev, "%d of %d rows do not have %d fields", ragged, len(d.Rows), len(d.Headers))
	}
	if cells > 0 {
		ratio := float64(emptyCells) / float64(cells)
		switch {
		case ratio > EmptyCellsError:
			out.add(RuleEmptyCellsRatio, SeverityError, "%d of %d cells (%.0f%%) are empty", emptyCells, cells, ratio*100)
		case ratio > EmptyCellsWarn:
			out.add(RuleEmptyCellsRatio, SeverityWarning, "%d of %d cells (%.0f%%) are empty", emptyCells, cells, ratio*100)
		}
	}
	if dupRows > 0 {
		out.add(RuleDuplicateRows, SeverityWarning, "%d rows repeat an earlier row", dupRows)
	}
	if untrimmed > 0 {
		out.add(RuleUntrimmedValues, SeverityInfo, "%d values start or end with white space", untrimmed)
	}
	return out
}

// isUntrimmed reports whether a non-blank s starts or ends with white space.
func isUntrimmed(s string) bool {
	t := strings.TrimSpace(s)
	return t != "" && t != s
}

// CheckPDF applies the PDF rules to d.
func CheckPDF(d *agentapi.PDFData) []agentapi.ValidationIssue {
	var out issues
	if d.PageCount != len(d.Pages) {
		out.add(RulePageCountConsistent, SeverityError, "page_count is %d but %d pages were extracted", d.PageCount, len(d.Pages))
	} else {
		for i, p := range d.Pages {
			if p.Number != i+1 {
				out.add(RulePageCountConsistent, SeverityError, "page %d is numbered %d", i+1, p.Number)
				break
			}
		}
	}
	if len(d.Pages) == 0 {
		out.add(RuleHasPages, SeverityError, "the document has no pages")
		return out
	}
	empty, chars, bad := 0, 0, 0
	for _, p := range d.Pages {
		n := 0
		for _, r := range p.Text {
			if !isBlank(r) {
				n++
			}
			if r == utf8.RuneError {
				bad++
			}
		}
		chars += n
		if n == 0 {
			empty++
		}
	}
	switch {
	case empty == len(d.Pages):
		out.add(RuleEmptyPages, SeverityError, "no page holds any text (a scan without a text layer?)")
		return out // min_text_length would say the same again
	case empty > 0:
		out.add(RuleEmptyPages, SeverityWarning, "%d of %d pages hold no text", empty, len(d.Pages))
	}
	if chars < MinTextLength {
		out.add(RuleMinTextLength, SeverityWarning, "only %d characters of text, fewer than %d", chars, MinTextLength)
	}
	if ratio := float64(bad) / float64(chars); ratio > UnreadableTextWarn {
		out.add(RuleUnreadableText, SeverityWarning, "%d of %d characters (%.0f%%) could not be decoded", bad, chars, ratio*100)
	}
	return out
}

func isBlank(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v' || r == 0xa0
}
