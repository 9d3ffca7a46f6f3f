package agentapi

// SkillInfo describes one method an agent offers (list_skills, the agent
// card).
type SkillInfo struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// SkillList is list_skills's result.
type SkillList struct {
	Agent  string      `json:"agent"`
	Skills []SkillInfo `json:"skills"`
}

// Health statuses of an agent (HealthReport.Status) and of a peer seen by
// discover_agents (PeerInfo.Status).
const (
	HealthHealthy     = "healthy"
	HealthDegraded    = "degraded"
	HealthUnreachable = "unreachable"
)

// Statuses of one health check (CheckResult.Status).
const (
	CheckOK      = "ok"
	CheckFailing = "failing"
)

// HealthReport is get_health's result and the body of GET /health.
type HealthReport struct {
	// Status is HealthHealthy, or HealthDegraded when a check fails.
	Status  string                 `json:"status"`
	Agent   string                 `json:"agent"`
	Version string                 `json:"version"`
	UptimeS int64                  `json:"uptime_s"`
	Checks  map[string]CheckResult `json:"checks"`
	// ExpiresInDays is the number of whole days before the serving
	// certificate expires. Under 30 the agent logs a warning once a day;
	// it stays healthy.
	ExpiresInDays *int `json:"expires_in_days,omitempty"`
}

// CheckResult is the outcome of one health check. Error is a short, safe
// message; the cause goes to the agent's log. Details are figures of the
// agent's own that some checks report (extract_workers: ExtractWorkers).
type CheckResult struct {
	Status  string `json:"status"`
	Error   string `json:"error,omitempty"`
	Details any    `json:"details,omitempty"`
}

// ExtractWorkers are the details of the extractor's health check
// extract_workers. The check stays ok when every worker is busy: a full
// pool makes requests wait (then -32002), it is not a fault.
type ExtractWorkers struct {
	// Busy is the number of worker slots in use (a document admitted, or
	// a worker running).
	Busy int `json:"busy"`
	// Total is EXTRACT_WORKERS.
	Total int `json:"total"`
	// KilledSinceStart counts the workers killed by a limit (time, memory,
	// CPU, output) since the agent started.
	KilledSinceStart uint64 `json:"killed_since_start"`
	// Landlock is the kernel's Landlock ABI version, which confines the
	// workers; 0: unavailable, workers run without filesystem or network
	// confinement (the other limits still apply). It does not fail the
	// check: confinement is best effort (docs/threat-model.md).
	Landlock int `json:"landlock"`
}
