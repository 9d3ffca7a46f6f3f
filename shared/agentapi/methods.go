package agentapi

import "slices"

// Methods every agent offers.
const (
	MethodListSkills = "list_skills"
	MethodGetHealth  = "get_health"
)

// The A2A protocol's methods every agent also answers (docs/contract.md,
// A2A). They are envelopes, not methods of the policy: message/send is
// authorized by the skill it names, tasks/get reads only the caller's own
// tasks.
const (
	MethodA2ASendMessage = "message/send"
	MethodA2AGetTask     = "tasks/get"
)

// Orchestrator methods.
const (
	MethodProcessDocument   = "process_document"
	MethodProcessBatch      = "process_batch"
	MethodGetDocumentStatus = "get_document_status"
	MethodDiscoverAgents    = "discover_agents"
)

// Extractor methods.
const (
	MethodExtractDocument      = "extract_document"
	MethodListSupportedFormats = "list_supported_formats"
)

// Validator methods.
const (
	MethodValidateDocument   = "validate_document"
	MethodGetValidationRules = "get_validation_rules"
)

// Archivist methods.
const (
	MethodArchiveDocument      = "archive_document"
	MethodGetDocument          = "get_document"
	MethodSearchDocuments      = "search_documents"
	MethodGetDocumentStats     = "get_document_stats"
	MethodUpdateDocumentStatus = "update_document_status"
)

// RouteMetrics is the HTTP route of the Prometheus metrics. It needs a
// client certificate that names a principal and no token; the policy
// decides who may read it, as for a method (any principal by default).
const RouteMetrics = "GET /metrics"

// Routes lists the routes, besides the JSON-RPC methods, that the policy
// decides on.
func Routes() []string { return []string{RouteMetrics} }

// AnyCaller, in a list of callers, admits every caller the CA issued a
// certificate to.
const AnyCaller = "*"

// defaultPolicy is who may call what when no policy file says otherwise.
// Roles, scopes, azp or sub in a token never grant a method: only the
// caller's certificate identity counts.
var defaultPolicy = map[string]map[string][]string{
	Orchestrator: {
		MethodProcessDocument:   {Lambda},
		MethodProcessBatch:      {Lambda},
		MethodGetDocumentStatus: {Lambda},
		MethodDiscoverAgents:    {Lambda},
	},
	Extractor: {
		MethodExtractDocument:      {Orchestrator},
		MethodListSupportedFormats: {AnyCaller},
	},
	Validator: {
		MethodValidateDocument:   {Orchestrator},
		MethodGetValidationRules: {AnyCaller},
	},
	Archivist: {
		MethodArchiveDocument:      {Orchestrator},
		MethodGetDocument:          {Orchestrator, Lambda},
		MethodSearchDocuments:      {Orchestrator, Lambda},
		MethodGetDocumentStats:     {Orchestrator, Lambda},
		MethodUpdateDocumentStatus: {Orchestrator},
	},
}

// DefaultPolicy returns, for agent, each method it offers (list_skills and
// get_health included) and each of Routes, with the callers admitted by
// default. It returns a
// fresh copy: changing it changes nothing here. ok is false for a name that
// is not an agent.
func DefaultPolicy(agent string) (methods map[string][]string, ok bool) {
	own, ok := defaultPolicy[agent]
	if !ok {
		return nil, false
	}
	out := map[string][]string{MethodListSkills: {AnyCaller}, MethodGetHealth: {AnyCaller}, RouteMetrics: {AnyCaller}}
	for m, callers := range own {
		out[m] = slices.Clone(callers)
	}
	return out, true
}
