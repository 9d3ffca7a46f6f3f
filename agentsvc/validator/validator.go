// Package validator scores extracted documents against named rules.
//
// Each rule (see Rules) belongs to a category (completeness, format,
// quality, consistency) and reports at most one issue per document, with a
// severity. The score starts at 100 and loses Weights[severity] per issue:
// 25 for an error, 10 for a warning, 2 for an info, clamped to 0..100. A
// document passes when it has no error and its score reaches the threshold
// (default 70).
//
// extracted_data is decoded into the extractor's own types
// (extractor.CSVData, extractor.PDFData), strictly: unknown members and
// missing required members are -32602, so a change of shape on one side
// fails loudly rather than scoring an empty document.
package validator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ca-a2a/ca-a2a/agentsvc/extractor"
	"github.com/ca-a2a/ca-a2a/agentsvc/skill"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// DefaultPassThreshold is the least passing score when Options sets none.
const DefaultPassThreshold = 70

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

// RulesResult is get_validation_rules's result.
type RulesResult struct {
	Rules         []Rule         `json:"rules"`
	Weights       map[string]int `json:"weights"`
	PassThreshold int            `json:"pass_threshold"`
}

// Options configure a Validator.
type Options struct {
	// PassThreshold is the least score that passes, 1..100; any other value
	// selects DefaultPassThreshold.
	PassThreshold int
}

// Validator offers validate_document and get_validation_rules.
type Validator struct{ opts Options }

// New returns a Validator.
func New(opts Options) *Validator {
	if opts.PassThreshold < 1 || opts.PassThreshold > 100 {
		opts.PassThreshold = DefaultPassThreshold
	}
	return &Validator{opts: opts}
}

// Methods returns the validator's methods.
func (v *Validator) Methods() []skill.Method {
	return []skill.Method{
		{Name: "validate_document", Description: "Score extracted data against named rules: {document_type, extracted_data}.", Handler: v.validateDocument},
		{Name: "get_validation_rules", Description: "The rules, their categories and severities, the weights and the pass threshold.", Handler: v.getRules},
	}
}

func (v *Validator) getRules(_ context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	return RulesResult{Rules: Rules, Weights: Weights, PassThreshold: v.opts.PassThreshold}, nil
}

// ValidateParams are validate_document's params.
type ValidateParams struct {
	DocumentType  string          `json:"document_type"`
	ExtractedData json.RawMessage `json:"extracted_data"`
}

func (v *Validator) validateDocument(_ context.Context, params json.RawMessage) (any, error) {
	var p ValidateParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	switch p.DocumentType {
	case extractor.TypeCSV:
		var d extractor.CSVData
		if err := decodeData(p.ExtractedData, &d, "headers", "rows", "row_count", "column_count"); err != nil {
			return nil, jsonrpc.InvalidParams("extracted_data is not CSV data: %v", err)
		}
		return v.Score(CheckCSV(&d)), nil
	case extractor.TypePDF:
		var d extractor.PDFData
		if err := decodeData(p.ExtractedData, &d, "pages", "page_count"); err != nil {
			return nil, jsonrpc.InvalidParams("extracted_data is not PDF data: %v", err)
		}
		return v.Score(CheckPDF(&d)), nil
	case "":
		return nil, jsonrpc.InvalidParams("document_type is required: pdf or csv")
	default:
		return nil, jsonrpc.InvalidParams("unsupported document_type: want pdf or csv")
	}
}

// decodeData decodes data strictly into v: an object holding every required
// member (not null), no unknown member, nothing after it.
func decodeData(data json.RawMessage, v any, required ...string) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil || members == nil {
		return errors.New("must be an object")
	}
	for _, name := range required {
		if m, ok := members[name]; !ok || string(m) == "null" {
			return fmt.Errorf("%q is required", name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return fmt.Errorf("%q must be %s", typeErr.Field, typeErr.Type)
		}
		return errors.New("unexpected member or value")
	}
	return nil
}

// Score turns issues into a report under v's threshold.
func (v *Validator) Score(issues []Issue) Report {
	score, hasError := 100, false
	for _, is := range issues {
		score -= Weights[is.Severity]
		hasError = hasError || is.Severity == SeverityError
	}
	score = max(0, min(100, score))
	if issues == nil {
		issues = []Issue{}
	}
	return Report{Score: score, Passed: !hasError && score >= v.opts.PassThreshold, Issues: issues}
}
