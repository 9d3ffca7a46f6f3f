package agentapi

import "encoding/json"

// ValidateParams are validate_document's params. ExtractedData is the
// extractor's PDFData or CSVData, passed on encoded; the validator decodes
// it strictly.
type ValidateParams struct {
	DocumentType  string          `json:"document_type"`
	ExtractedData json.RawMessage `json:"extracted_data"`
}

// Bounds of a validation report, so that the extracted data (at most
// MaxExtractedDataBytes) and the report always fit one archive_document
// request under MaxBodyBytes together with the rest of its params
// (document_id, s3_key and file_name of at most 1024 bytes, bucket of at
// most 255, the hash, the envelope). The validator keeps every issue
// message within MaxIssueMessageBytes and a report within
// MaxValidationIssues: a message escapes to at most 6 times its bytes in
// JSON, so a report encodes within MaxValidationReportBytes.
const (
	MaxIssueMessageBytes     = 256
	MaxValidationIssues      = 16
	MaxValidationReportBytes = 32 << 10
)

// ValidationReport is validate_document's result: a score from 0 to 100,
// whether the document passes, and the issues found.
type ValidationReport struct {
	Score  int               `json:"score"`
	Passed bool              `json:"passed"`
	Issues []ValidationIssue `json:"issues"`
}

// ValidationIssue is one finding of a rule.
type ValidationIssue struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// ValidationRule describes a rule (get_validation_rules).
type ValidationRule struct {
	ID          string `json:"id"`
	Category    string `json:"category"`
	AppliesTo   string `json:"applies_to"`
	Severity    string `json:"severity"`
	Description string `json:"description"`
}

// RulesResult is get_validation_rules's result.
type RulesResult struct {
	Rules         []ValidationRule `json:"rules"`
	Weights       map[string]int   `json:"weights"`
	PassThreshold int              `json:"pass_threshold"`
}
