package binding

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// refusal is one row of the table below.
type refusal struct {
	err     error
	code    string
	message string
}

// refusals is the one place where an error of the authentication chain gets
// its reason code (agentapi.Reason*) and its message. The first row whose
// error matches (errors.Is) wins, so a more specific cause comes before the
// general one it wraps: ErrHeaderRefused and ErrUnknownKey travel inside
// jwt.ErrTokenUnverifiable, ErrAlgNotAllowed inside
// jwt.ErrTokenSignatureInvalid. A new cause of refusal is one more row with
// its own sentinel error and a code of agentapi.Reasons; TestEveryCodeHasARow
// keeps the two lists in step.
//
// The messages are the ones callers have always seen: the code, not the
// message, is what tells header tricks and algorithm confusion apart from a
// bad signature.
var refusals = []refusal{
	// The certificate of a kept-alive connection, checked again on every
	// request (certload.CheckPeer): the handshake refuses the same
	// certificate on a new connection.
	{certload.ErrRevoked, agentapi.ReasonCertificateRevoked, "client certificate has been revoked"},
	{certload.ErrExpired, agentapi.ReasonCertificateExpired, "client certificate has expired"},
	{certload.ErrNotYetValid, agentapi.ReasonCertificateExpired, "client certificate is not valid yet"},
	{certload.ErrUntrusted, agentapi.ReasonCertificateUntrusted, "client certificate is no longer trusted (its CA was retired)"},
	{ErrNoToken, agentapi.ReasonMissingToken, "missing bearer token"},
	// A certificate-bound token arriving without a certificate: a token
	// used away from its key, as a replay is.
	{ErrNoClientCert, agentapi.ReasonBindingMismatch, "no client certificate"},
	// No principal: the policy admits it to nothing.
	{ErrNoIdentity, agentapi.ReasonMethodForbidden, "client certificate carries no agent identity"},
	{ErrNoConfirmation, agentapi.ReasonUnboundToken, "token is not certificate-bound (no cnf claim)"},
	{ErrThumbprintMismatch, agentapi.ReasonBindingMismatch, "token is not bound to the presented certificate"},
	{ErrHeaderRefused, agentapi.ReasonHeaderRefused, "token signature is invalid"},
	{ErrAlgNotAllowed, agentapi.ReasonAlgNotAllowed, "token signature is invalid"},
	{ErrMalformedToken, agentapi.ReasonMalformedToken, "token is malformed"},
	{ErrUnknownKey, agentapi.ReasonUnknownKID, "token signed with an unknown key"},
	// jwt joins every failed claim check; the order below decides which
	// one names the refusal.
	{jwt.ErrTokenExpired, agentapi.ReasonExpired, "token expired"},
	{jwt.ErrTokenNotValidYet, agentapi.ReasonNotYetValid, "token not valid yet"},
	{jwt.ErrTokenUsedBeforeIssued, agentapi.ReasonNotYetValid, "token not valid yet"},
	{jwt.ErrTokenInvalidIssuer, agentapi.ReasonBadIssuer, "token has the wrong issuer"},
	{jwt.ErrTokenInvalidAudience, agentapi.ReasonBadAudience, "token has the wrong audience"},
	// An access token of ours always has exp (and iss and aud): one
	// without is not a token of the identity provider.
	{jwt.ErrTokenRequiredClaimMissing, agentapi.ReasonMalformedToken, "token lacks a required claim"},
	{jwt.ErrTokenSignatureInvalid, agentapi.ReasonBadSignature, "token signature is invalid"},
	{jwt.ErrTokenUnverifiable, agentapi.ReasonBadSignature, "token signature is invalid"},
	{jwt.ErrTokenMalformed, agentapi.ReasonMalformedToken, "token is malformed"},
}

// fallback names an error no row matches. Nothing in this package returns
// one; it keeps a refusal labelled should a dependency start to.
var fallback = refusal{code: agentapi.ReasonMalformedToken, message: "invalid token"}

func lookup(err error) refusal {
	for _, r := range refusals {
		if errors.Is(err, r.err) {
			return r
		}
	}
	return fallback
}

// Code returns the stable reason code (one of agentapi.Reasons) of an error
// of the authentication chain, for the access log, data.reason and metrics.
func Code(err error) string { return lookup(err).code }

// Reason returns the short, safe message of an error of the authentication
// chain, for the caller (the JSON-RPC message, error_description) and the
// logs. It never includes the token.
func Reason(err error) string { return lookup(err).message }
