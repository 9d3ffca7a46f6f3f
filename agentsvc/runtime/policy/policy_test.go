package policy

import (
	"errors"
	"testing"
)

func TestDefault(t *testing.T) {
	tests := []struct {
		agent, caller, method string
		allowed               bool
	}{
		{"orchestrator", "lambda", "process_document", true},
		{"orchestrator", "extractor", "process_document", false},
		{"orchestrator", "orchestrator", "process_batch", false},
		{"orchestrator", "extractor", "list_skills", true},
		{"orchestrator", "", "list_skills", false},
		{"extractor", "orchestrator", "extract_document", true},
		{"extractor", "lambda", "extract_document", false},
		{"extractor", "lambda", "list_supported_formats", true},
		{"validator", "lambda", "validate_document", false},
		{"archivist", "lambda", "get_document", true},
		{"archivist", "lambda", "archive_document", false},
		{"archivist", "lambda", "update_document_status", false},
		{"archivist", "orchestrator", "update_document_status", true},
		{"archivist", "orchestrator", "drop_table", false},
	}
	for _, tc := range tests {
		p, err := Default(tc.agent)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Allow(tc.caller, tc.method) == nil; got != tc.allowed {
			t.Errorf("%s: %q calling %s: allowed=%v, want %v", tc.agent, tc.caller, tc.method, got, tc.allowed)
		}
	}
	if _, err := Default("keycloak"); err == nil {
		t.Fatal("unknown agent accepted")
	}
}

func TestParse(t *testing.T) {
	offered := []string{"list_skills", "get_health", "get_document", "archive_document"}
	p, err := Parse([]byte(`{"agents":{"archivist":{"get_document":["lambda"],"list_skills":["*"]}}}`), "archivist", offered)
	if err != nil {
		t.Fatal(err)
	}
	if p.Allow("lambda", "get_document") != nil || !errors.Is(p.Allow("orchestrator", "get_document"), ErrForbidden) {
		t.Fatal("file policy not applied")
	}
	if p.Allow("orchestrator", "archive_document") == nil {
		t.Fatal("a method absent from the file must be refused")
	}
	if p, err := Parse([]byte(`{"agents":{"validator":{}}}`), "archivist", offered); err != nil || p.Allow("orchestrator", "archive_document") != nil {
		t.Fatalf("an agent absent from the file keeps the defaults: %v", err)
	}
	for name, bad := range map[string]string{
		"not JSON":        `{`,
		"trailing data":   `{"agents":{}} {}`,
		"unknown field":   `{"agents":{},"roles":{}}`,
		"no agents":       `{}`,
		"unknown agent":   `{"agents":{"keycloak":{}}}`,
		"unknown method":  `{"agents":{"archivist":{"drop_table":["lambda"]}}}`,
		"bad caller":      `{"agents":{"archivist":{"get_document":["Lambda Admin"]}}}`,
		"callers not set": `{"agents":{"archivist":{"get_document":"lambda"}}}`,
	} {
		if _, err := Parse([]byte(bad), "archivist", offered); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
