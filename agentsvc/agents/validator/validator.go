// Package validator scores extracted documents against named rules.
//
// Each rule (see Rules) belongs to a category (completeness, format,
// quality, consistency) and reports at most one issue per document, with a
// severity. The score starts at 100 and loses Weights[severity] per issue:
// 25 for an error, 10 for a warning, 2 for an info, clamped to 0..100. A
// document passes when it has no error and its score reaches the threshold
// (default 70).
//
// extracted_data is decoded into the contract's types (agentapi.CSVData,
// agentapi.PDFData), strictly: unknown members and
// missing required members are -32602, so a change of shape on one side
// fails loudly rather than scoring an empty document.
package validator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/skill"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// DefaultPassThreshold is the least passing score when Options sets none.
const DefaultPassThreshold = 70

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
		{Name: agentapi.MethodValidateDocument, Description: "Score extracted data against named rules: {document_type, extracted_data}.", Handler: v.validateDocument},
		{Name: agentapi.MethodGetValidationRules, Description: "The rules, their categories and severities, the weights and the pass threshold.", Handler: v.getRules},
	}
}

func (v *Validator) getRules(_ context.Context, params json.RawMessage) (any, error) {
	if err := jsonrpc.DecodeParams(params, &struct{}{}); err != nil {
		return nil, err
	}
	return agentapi.RulesResult{Rules: Rules, Weights: Weights, PassThreshold: v.opts.PassThreshold}, nil
}

func (v *Validator) validateDocument(_ context.Context, params json.RawMessage) (any, error) {
	var p agentapi.ValidateParams
	if err := jsonrpc.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	switch p.DocumentType {
	case agentapi.DocumentTypeCSV:
		var d agentapi.CSVData
		if err := decodeData(p.ExtractedData, &d, "headers", "rows", "row_count", "column_count"); err != nil {
			return nil, jsonrpc.InvalidParams("extracted_data is not CSV data: %v", err)
		}
		return v.Score(CheckCSV(&d)), nil
	case agentapi.DocumentTypePDF:
		var d agentapi.PDFData
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

// Score turns issues into a report under v's threshold. Every issue
// counts in the score; the report lists the first
// agentapi.MaxValidationIssues of them, each message cut to
// agentapi.MaxIssueMessageBytes, so that it encodes within
// agentapi.MaxValidationReportBytes.
func (v *Validator) Score(issues []agentapi.ValidationIssue) agentapi.ValidationReport {
	score, hasError := 100, false
	for _, is := range issues {
		score -= Weights[is.Severity]
		hasError = hasError || is.Severity == SeverityError
	}
	score = max(0, min(100, score))
	if issues == nil {
		issues = []agentapi.ValidationIssue{}
	}
	if len(issues) > agentapi.MaxValidationIssues {
		issues = issues[:agentapi.MaxValidationIssues]
	}
	for i, is := range issues {
		if len(is.Message) > agentapi.MaxIssueMessageBytes {
			issues = slices.Clone(issues) // the caller's slice is left as it is
			for j := i; j < len(issues); j++ {
				issues[j].Message = truncate(issues[j].Message, agentapi.MaxIssueMessageBytes)
			}
			break
		}
	}
	return agentapi.ValidationReport{Score: score, Passed: !hasError && score >= v.opts.PassThreshold, Issues: issues}
}
