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
	// CodeTooLarge travels with HTTP 413: the request body is over 1 MiB.
	CodeTooLarge = -32012
)
