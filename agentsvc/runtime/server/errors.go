package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// The one place where errors become responses. Handlers return
// *jsonrpc.Error values for what the caller should see; anything else is an
// internal error whose details go to the log, never to the client.

var (
	errInternal = jsonrpc.Errorf(jsonrpc.CodeInternalError, "internal error")
	errPanic    = errors.New("server: handler panicked")
)

// refusal is the JSON-RPC error of a refusal: its message for people, and
// its reason code in data.reason for programs (docs/contract.md, Refusal
// reasons).
func refusal(code int, reason, message string) *jsonrpc.Error {
	return &jsonrpc.Error{Code: code, Message: message, Data: agentapi.RefusalData{Reason: reason}}
}

// errResultTooLarge answers a call whose result no caller would read.
var errResultTooLarge = jsonrpc.Errorf(agentapi.CodeTooLarge, "result larger than %d bytes", maxResultBytes)

// errBatchTooLarge answers the elements of a batch past
// MaxBatchResponseBytes.
var errBatchTooLarge = jsonrpc.Errorf(agentapi.CodeTooLarge, "batch answer larger than %d bytes: this element was not answered", MaxBatchResponseBytes)

func tooLarge() *jsonrpc.Error {
	return refusal(agentapi.CodeTooLarge, agentapi.ReasonBodyTooLarge, "request body larger than 1 MiB")
}

// refuse answers a request refused before any JSON-RPC call was read, and
// counts the refusal once: its reason goes to the access log line and
// ca_a2a_auth_refusals_total.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, e *jsonrpc.Error) {
	info := infoOf(r.Context())
	info.code, info.reason = e.Code, reason
	s.metrics.Refused(reason)
	writeError(w, status, e)
}

// refuseCall is refuse for POST /message, where the refusal is also a call
// answered (its method unknown: the body was not read).
func (s *Server) refuseCall(w http.ResponseWriter, r *http.Request, status int, reason string, e *jsonrpc.Error) {
	s.refuse(w, r, status, reason, e)
	s.metrics.ObserveCall(s.other, e.Code, time.Since(infoOf(r.Context()).start))
}

// countUnread counts a call answered before its method could be read (a
// parse error, an invalid batch).
func (s *Server) countUnread(ctx context.Context, code int) {
	s.metrics.ObserveCall(s.other, code, time.Since(infoOf(ctx).start))
}

// toRPCError maps a handler error to the JSON-RPC error the caller sees.
func (s *Server) toRPCError(ctx context.Context, log func() *slog.Logger, err error) *jsonrpc.Error {
	if err == nil {
		return nil
	}
	var rpcErr *jsonrpc.Error
	switch {
	case errors.As(err, &rpcErr):
		if rpcErr.Code == jsonrpc.CodeInternalError {
			log().Error("handler failed", "error", err)
			return errInternal
		}
		return rpcErr
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		log().Warn("handler ran out of time", "error", err)
		return jsonrpc.Errorf(agentapi.CodeUnavailable, "deadline exceeded")
	default:
		log().Error("handler failed", "error", err)
		return errInternal
	}
}

// asRPCError returns the *jsonrpc.Error err carries (a decoding failure,
// say), or an internal error.
func asRPCError(err error) *jsonrpc.Error {
	var e *jsonrpc.Error
	if errors.As(err, &e) {
		return e
	}
	return errInternal
}

// writeError answers a failure that happened before a JSON-RPC request
// could be read (authentication, an oversized body, a route that does not
// exist): a JSON-RPC error with id null and the given HTTP status, so every
// such answer has the same shape.
func writeError(w http.ResponseWriter, status int, e *jsonrpc.Error) {
	body, _ := json.Marshal(jsonrpc.Response{JSONRPC: jsonrpc.Version, Error: e, ID: json.RawMessage("null")})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeUnauthorized answers a request the authentication chain refused
// (binding.Refuse): 401, WWW-Authenticate with realm "ca-a2a" (and
// error="invalid_token" when a token was presented, RFC 6750 section 3.1),
// and a JSON-RPC error -32010 with the message and the reason code of
// binding's one table.
func (s *Server) writeUnauthorized(w http.ResponseWriter, r *http.Request, err error) {
	message := binding.Reason(err)
	challenge := `Bearer realm="ca-a2a"`
	if !errors.Is(err, binding.ErrNoToken) {
		challenge += `, error="invalid_token", error_description="` + message + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	reason := binding.Code(err)
	s.refuseCall(w, r, http.StatusUnauthorized, reason, refusal(agentapi.CodeUnauthenticated, reason, message))
}

// refuseConnection answers a request whose client certificate may no
// longer be used (Options.PeerCheck) as any authentication refusal, and
// closes the connection after the answer: the next request has to open a
// new one, whose handshake refuses the certificate.
func (s *Server) refuseConnection(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Connection", "close")
	s.writeUnauthorized(w, r, err)
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "not found"))
}
