package agentapi

// CloudWatch metrics of the agents and the Lambda, written as Embedded
// Metric Format lines on stdout (docs/operations.md, Metrics and
// dashboards). The CDK app's alarms and dashboard name the same metrics:
// TestInfraMetricsAgree keeps its copy in step.
const (
	// MetricsNamespace is the CloudWatch namespace of every metric.
	MetricsNamespace = "CaA2a"
	// DimensionAgent names the emitter: an agent, or Lambda for the Lambda.
	DimensionAgent = "Agent"
	// DimensionMethod is a method the agent offers (never another value).
	DimensionMethod = "Method"
	// DimensionReason is one of Reasons.
	DimensionReason = "Reason"
)

// Agent metrics, flushed at most once a minute and at shutdown.
const (
	// MetricRequests counts JSON-RPC calls answered ([Agent], [Agent, Method]).
	MetricRequests = "Requests"
	// MetricAuthRefusals counts refusals of the authentication chain
	// ([Agent], [Agent, Reason]).
	MetricAuthRefusals = "AuthRefusals"
	// MetricInternalErrors counts -32603 answers ([Agent]).
	MetricInternalErrors = "InternalErrors"
	// MetricLatency is the latency of calls in milliseconds, as values
	// ([Agent, Method]).
	MetricLatency = "Latency"
	// MetricCertificateDaysToExpiry is the least number of days left on the
	// serving certificate and every trusted CA ([Agent]).
	MetricCertificateDaysToExpiry = "CertificateDaysToExpiry"
	// MetricExtractWorkersKilled counts sandboxed parses ended by a limit
	// (the extractor, [Agent]).
	MetricExtractWorkersKilled = "ExtractWorkersKilled"
)

// Lambda metrics, one line per invocation, [Agent] with Agent = Lambda.
const (
	// MetricDocumentsProcessed counts documents the orchestrator answered
	// (archived, rejected or failed permanently).
	MetricDocumentsProcessed = "DocumentsProcessed"
	// MetricDocumentsFailed counts permanent failures: acknowledged, not retried.
	MetricDocumentsFailed = "DocumentsFailed"
	// MetricDocumentsRetried counts transient failures: reported for retry.
	MetricDocumentsRetried = "DocumentsRetried"
	// MetricTokenFetches counts token requests to the identity provider.
	MetricTokenFetches = "TokenFetches"
	// MetricColdStart is 1 on the first invocation of an execution
	// environment, else 0.
	MetricColdStart = "ColdStart"
)
