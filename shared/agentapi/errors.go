package agentapi

// Application error codes (JSON-RPC reserves -32000..-32099 for them). The
// standard codes (-32700, -32600..-32603) are in shared/jsonrpc.
const (
	// CodeNotFound: the thing asked for does not exist (a missing document).
	CodeNotFound = -32001
	// CodeUnavailable: a dependency is down or too slow; the call may be
	// retried (a transient failure).
	CodeUnavailable = -32002
	// CodeInvalidTransition: update_document_status asked for a status
	// change the archive's state machine refuses (see CanTransition).
	CodeInvalidTransition = -32003
	// CodeUnauthenticated travels with HTTP 401: no token, or a token the
	// authentication chain refused.
	CodeUnauthenticated = -32010
	// CodeForbidden travels with HTTP 403 for a single call (inside a batch,
	// with HTTP 200): the caller may not call the method.
	CodeForbidden = -32011
	// CodeTooLarge: over the hop limit (MaxBodyBytes). With HTTP 413 the
	// request body was; with HTTP 200 the result would be (an extraction
	// whose data cannot travel on). Permanent: the same input fails again.
	CodeTooLarge = -32012
)

// MaxBodyBytes is the hop limit: the largest request body an agent reads
// (413, CodeTooLarge). Results that are passed on to another agent (the
// extractor's data) are bounded by it as well. The server's body limit and
// the extractor's output limit are this one constant.
const MaxBodyBytes = 1 << 20

// MaxResponseBytes is the largest answer a caller reads (agentclient,
// a2acaller). Answers are not bounded by the hop limit: a search page, a
// batch of documents or an A2A task that echoes the caller's message may
// be larger. An agent answers CodeTooLarge instead of a result no caller
// would read.
const MaxResponseBytes = 64 << 20

// Permanent reports whether a peer's error code says the input itself is at
// fault, so that retrying cannot help: -32602 (a document that cannot be
// parsed, unsupported, over a limit, a bad key) and CodeTooLarge. Every
// other code (a peer down or busy, a refused token, an internal error) is
// transient: the same input may succeed later.
func Permanent(code int) bool {
	return code == codeInvalidParams || code == CodeTooLarge
}

// codeInvalidParams is JSON-RPC's -32602 (jsonrpc.CodeInvalidParams); it is
// repeated here because agentapi imports no other package of the project.
const codeInvalidParams = -32602
