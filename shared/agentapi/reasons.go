package agentapi

import "slices"

// Refusal reason codes (docs/contract.md, Refusal reasons). Every refusal of
// the authentication chain carries exactly one: in the access log line
// (`reason`), in the JSON-RPC error's `data.reason`, and as the label of the
// metrics ca_a2a_auth_refusals_total and AuthRefusals. They are stable:
// alarms and dashboards name them. The human message of a refusal is not a
// code and may change.
//
// Which error gives which code is decided in one place per layer:
// shared/binding (the token and certificate checks) and
// agentsvc/runtime/server (body size, authorization).
const (
	// ReasonMissingToken: no single "Authorization: Bearer <token>" header.
	ReasonMissingToken = "missing_token"
	// ReasonMalformedToken: not a JWT (segments, base64, JSON, a claim of
	// the wrong type), or a JWT without a claim every access token carries
	// (exp).
	ReasonMalformedToken = "malformed_token"
	// ReasonHeaderRefused: the JWT header carries jku, x5u, jwk, x5c or
	// crit, or no kid.
	ReasonHeaderRefused = "header_refused"
	// ReasonAlgNotAllowed: the algorithm is not in the allow-list or does
	// not fit the key the kid names.
	ReasonAlgNotAllowed = "alg_not_allowed"
	// ReasonUnknownKID: no cached key has the token's kid, even after the
	// refresh this request was allowed to trigger.
	ReasonUnknownKID = "unknown_kid"
	// ReasonBadSignature: the signature does not verify with the key.
	ReasonBadSignature = "bad_signature"
	// ReasonExpired: exp has passed.
	ReasonExpired = "expired"
	// ReasonNotYetValid: nbf or iat more than the leeway in the future.
	ReasonNotYetValid = "not_yet_valid"
	// ReasonBadIssuer: iss is not the configured issuer.
	ReasonBadIssuer = "bad_issuer"
	// ReasonBadAudience: aud does not contain the configured audience.
	ReasonBadAudience = "bad_audience"
	// ReasonUnboundToken: the token has no cnf.x5t#S256 and binding is required.
	ReasonUnboundToken = "unbound_token"
	// ReasonBindingMismatch: cnf.x5t#S256 is not the thumbprint of the
	// certificate on the connection (or none was presented): a token
	// replayed from another client.
	ReasonBindingMismatch = "binding_mismatch"
	// ReasonBodyTooLarge: the request body is over 1 MiB.
	ReasonBodyTooLarge = "body_too_large"
	// ReasonMethodForbidden: the caller's certificate identity may not call
	// the method or route (a certificate that names no principal may call
	// nothing).
	ReasonMethodForbidden = "method_forbidden"

	// ReasonCertificateRevoked: the client certificate of a kept-alive
	// connection was revoked after its handshake (the CRL now lists it).
	ReasonCertificateRevoked = "certificate_revoked"
	// ReasonCertificateExpired: the client certificate of a kept-alive
	// connection is outside its validity now (it expired after the
	// handshake, or a clock step put it before notBefore).
	ReasonCertificateExpired = "certificate_expired"
	// ReasonCertificateUntrusted: the client certificate of a kept-alive
	// connection no longer chains to a trusted CA (its CA was retired from
	// the bundle after the handshake).
	ReasonCertificateUntrusted = "certificate_untrusted"
)

// reasons lists every code in the order of the chain.
var reasons = []string{
	ReasonMissingToken, ReasonMalformedToken, ReasonHeaderRefused, ReasonAlgNotAllowed, ReasonUnknownKID,
	ReasonBadSignature, ReasonExpired, ReasonNotYetValid, ReasonBadIssuer, ReasonBadAudience,
	ReasonUnboundToken, ReasonBindingMismatch, ReasonBodyTooLarge, ReasonMethodForbidden,
	ReasonCertificateRevoked, ReasonCertificateExpired, ReasonCertificateUntrusted,
}

// Reasons returns every refusal reason code (a copy). A metric label takes
// no other value.
func Reasons() []string { return slices.Clone(reasons) }

// RefusalData is the data member of the JSON-RPC error of a refusal:
// {"reason": "<code>"}.
type RefusalData struct {
	Reason string `json:"reason"`
}
