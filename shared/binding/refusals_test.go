package binding

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/certload"
)

// TestEveryCodeHasARow keeps the table and the contract's list in step:
// every row names a code of agentapi.Reasons, and every code is produced
// by a row or by the agent server (body size, authorization).
func TestEveryCodeHasARow(t *testing.T) {
	produced := map[string]bool{}
	for _, r := range refusals {
		if !slices.Contains(agentapi.Reasons(), r.code) {
			t.Errorf("row %v: code %q is not in agentapi.Reasons", r.err, r.code)
		}
		if r.message == "" {
			t.Errorf("row %v has no message", r.err)
		}
		produced[r.code] = true
	}
	elsewhere := []string{agentapi.ReasonBodyTooLarge, agentapi.ReasonMethodForbidden} // agentsvc/runtime/server
	for _, code := range agentapi.Reasons() {
		if !produced[code] && !slices.Contains(elsewhere, code) {
			t.Errorf("code %s has no row", code)
		}
	}
}

// TestCodeOfWrappedErrors: the code survives wrapping, the more specific
// cause wins over the general error jwt wraps it in, and an error no row
// knows still gets a code.
func TestCodeOfWrappedErrors(t *testing.T) {
	tests := []struct {
		err  error
		code string
	}{
		{fmt.Errorf("x: %w", ErrNoToken), agentapi.ReasonMissingToken},
		{fmt.Errorf("x: %w", certload.ErrRevoked), agentapi.ReasonCertificateRevoked},
		{fmt.Errorf("x: %w", certload.ErrExpired), agentapi.ReasonCertificateExpired},
		{fmt.Errorf("x: %w", certload.ErrNotYetValid), agentapi.ReasonCertificateExpired},
		{fmt.Errorf("x: %w", certload.ErrUntrusted), agentapi.ReasonCertificateUntrusted},
		{ErrNoClientCert, agentapi.ReasonBindingMismatch},
		{ErrNoIdentity, agentapi.ReasonMethodForbidden},
		{fmt.Errorf("%w: %w", ErrInvalidToken, fmt.Errorf("%w: %w", jwt.ErrTokenUnverifiable, ErrHeaderRefused)), agentapi.ReasonHeaderRefused},
		{fmt.Errorf("%w: %w", jwt.ErrTokenUnverifiable, ErrUnknownKey), agentapi.ReasonUnknownKID},
		{fmt.Errorf("%w: %w", jwt.ErrTokenSignatureInvalid, ErrAlgNotAllowed), agentapi.ReasonAlgNotAllowed},
		{errors.Join(jwt.ErrTokenInvalidIssuer, jwt.ErrTokenExpired), agentapi.ReasonExpired},
		{jwt.ErrTokenRequiredClaimMissing, agentapi.ReasonMalformedToken},
		{errors.New("something new"), agentapi.ReasonMalformedToken},
	}
	for _, tc := range tests {
		if got := Code(tc.err); got != tc.code {
			t.Errorf("Code(%v) = %s, want %s", tc.err, got, tc.code)
		}
	}
	if Reason(errors.New("something new")) != "invalid token" {
		t.Error("fallback message")
	}
}
