package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// The one place where errors become responses. Handlers return
// *jsonrpc.Error values for what the caller should see; anything else is an
// internal error whose details go to the log, never to the client.

var (
	errTooLarge = jsonrpc.Errorf(agentapi.CodeTooLarge, "request body larger than 1 MiB")
	errInternal = jsonrpc.Errorf(jsonrpc.CodeInternalError, "internal error")
	errPanic    = errors.New("server: handler panicked")
)

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

// writeError answers a failure that happened before a JSON-RPC request
// could be read.
func writeError(w http.ResponseWriter, status int, e *jsonrpc.Error) {
	jsonrpc.WriteHTTPError(w, status, e)
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "not found"))
}
