package agentapi

// ProcessDocumentParams are process_document's params; the Lambda also
// accepts this shape as an SQS message body.
type ProcessDocumentParams struct {
	S3Key string `json:"s3_key"`
	// Bucket, when set, must be the bucket the deployment serves.
	Bucket string `json:"bucket,omitempty"`
}

// ProcessResult is process_document's result, and one element of a batch.
type ProcessResult struct {
	DocumentID string `json:"document_id"`
	S3Key      string `json:"s3_key"`
	Bucket     string `json:"bucket,omitempty"`
	// Status is StatusArchived, StatusRejected or StatusFailed.
	Status string `json:"status"`
	// Failure classifies a failed run (Status StatusFailed): FailurePermanent
	// when the document can never be processed and is archived as failed,
	// FailureTransient when a retry may succeed and nothing was archived.
	// It is empty otherwise. A caller must treat anything but
	// FailurePermanent as transient, so that nothing is dropped.
	Failure    string `json:"failure,omitempty"`
	Stages     Stages `json:"stages"`
	DurationMS int64  `json:"duration_ms"`
}

// Classes of a failed run (ProcessResult.Failure).
const (
	// FailurePermanent: a stage refused the document itself (Permanent
	// says which codes do); the document is archived with status failed,
	// its stage and the cause, and redelivering it changes nothing. The
	// Lambda acknowledges it.
	FailurePermanent = "permanent"
	// FailureTransient: a peer was down, busy or too slow; nothing was
	// archived. The Lambda reports it for retry (then the dead-letter
	// queue).
	FailureTransient = "transient"
)

// Pipeline stages, as named in Stages and in a failed document's record.
const (
	StageExtraction = "extraction"
	StageValidation = "validation"
	StageArchive    = "archive"
)

// Stages reports each stage of the pipeline; a stage that did not run is
// absent.
type Stages struct {
	Extraction *Stage `json:"extraction,omitempty"`
	Validation *Stage `json:"validation,omitempty"`
	Archive    *Stage `json:"archive,omitempty"`
}

// Outcomes of one stage (Stage.Status).
const (
	StageOK      = "ok"
	StageFailed  = "failed"
	StageSkipped = "skipped"
)

// Stage is the outcome of one stage.
type Stage struct {
	// Status is StageOK, StageFailed or StageSkipped.
	Status string `json:"status"`
	// Code and Message are the JSON-RPC error the peer returned.
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Details summarises a successful stage.
	Details map[string]any `json:"details,omitempty"`
}

// ProcessBatchParams are process_batch's params.
type ProcessBatchParams struct {
	Prefix        string `json:"prefix,omitempty"`
	FileExtension string `json:"file_extension,omitempty"`
}

// BatchResult is process_batch's result.
type BatchResult struct {
	Total    int `json:"total"`
	Archived int `json:"archived"`
	Rejected int `json:"rejected"`
	Failed   int `json:"failed"`
	// Truncated: more documents matched than one batch processes.
	Truncated bool            `json:"truncated"`
	Documents []ProcessResult `json:"documents"`
}

// DocumentIDParams are the params of the methods that name one document
// (get_document_status, get_document).
type DocumentIDParams struct {
	DocumentID string `json:"document_id"`
}

// DocumentStatus is get_document_status's result: the archived document's
// summary without its data and validation.
type DocumentStatus struct {
	DocumentID   string `json:"document_id"`
	Status       string `json:"status"`
	DocumentType string `json:"document_type"`
	FileName     string `json:"file_name"`
	S3Key        string `json:"s3_key"`
	Bucket       string `json:"bucket"`
	Score        *int   `json:"score"`
	Passed       *bool  `json:"passed"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
}

// DiscoverResult is discover_agents's result.
type DiscoverResult struct {
	Agents []PeerInfo `json:"agents"`
}

// PeerInfo is one peer in discover_agents.
type PeerInfo struct {
	Agent string `json:"agent"`
	// Status is HealthHealthy, HealthDegraded or HealthUnreachable.
	Status string        `json:"status"`
	Skills []SkillInfo   `json:"skills,omitempty"`
	Health *HealthReport `json:"health,omitempty"`
	Error  string        `json:"error,omitempty"`
}
