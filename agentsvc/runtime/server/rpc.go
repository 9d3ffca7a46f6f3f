package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/ca-a2a/ca-a2a/agentsvc/runtime/policy"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/binding"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// serveMessage runs after authentication (auth says who is calling): body
// limit, JSON-RPC parsing, method lookup, authorization, dispatch.
func (s *Server) serveMessage(w http.ResponseWriter, r *http.Request, auth binding.Auth) {
	infoOf(r.Context()).caller = auth.Caller
	if r.ContentLength > agentapi.MaxBodyBytes {
		s.refuseCall(w, r, http.StatusRequestEntityTooLarge, agentapi.ReasonBodyTooLarge, tooLarge())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, agentapi.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.refuseCall(w, r, http.StatusRequestEntityTooLarge, agentapi.ReasonBodyTooLarge, tooLarge())
			return
		}
		s.countUnread(r.Context(), jsonrpc.CodeParseError)
		writeError(w, http.StatusBadRequest, jsonrpc.Errorf(jsonrpc.CodeParseError, "could not read request body"))
		return
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		s.serveBatch(w, r.Context(), auth.Caller, trimmed)
		return
	}
	if !json.Valid(trimmed) {
		s.countUnread(r.Context(), jsonrpc.CodeParseError)
		writeJSON(w, http.StatusOK, errorResponse(nil, jsonrpc.Errorf(jsonrpc.CodeParseError, "parse error")))
		return
	}
	resp, status := s.call(r.Context(), auth.Caller, trimmed, false)
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, status, resp)
}

func (s *Server) serveBatch(w http.ResponseWriter, ctx context.Context, caller string, body []byte) {
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		s.countUnread(ctx, jsonrpc.CodeParseError)
		writeJSON(w, http.StatusOK, errorResponse(nil, jsonrpc.Errorf(jsonrpc.CodeParseError, "parse error")))
		return
	}
	if len(elems) == 0 {
		s.countUnread(ctx, jsonrpc.CodeInvalidRequest)
		writeJSON(w, http.StatusOK, errorResponse(nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "empty batch")))
		return
	}
	infoOf(ctx).method = "batch"
	if len(elems) > MaxBatch {
		s.countUnread(ctx, jsonrpc.CodeInvalidRequest)
		writeJSON(w, http.StatusOK, errorResponse(nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "batch larger than %d", MaxBatch)))
		return
	}
	// One deadline for the whole batch: its elements run one after another.
	ctx, cancel := context.WithTimeout(ctx, s.opts.HandlerTimeout)
	defer cancel()
	// The answers are encoded as they come, to bound their sum.
	out := []byte{'['}
	answered, full := 0, false
	for _, e := range elems {
		var resp *jsonrpc.Response
		if full {
			resp = s.skipElement(e)
		} else {
			resp, _ = s.call(ctx, caller, e, true)
		}
		if resp == nil {
			continue
		}
		data, err := jsonrpc.Marshal(resp)
		if err != nil { // answers of raw results and errors always encode
			data, _ = jsonrpc.Marshal(errorResponse(resp.ID, errInternal))
		}
		if !full && len(out)+len(data)+2 > MaxBatchResponseBytes {
			// This element ran, but its answer is not sent; the
			// following ones are answered without running.
			full = true
			data, _ = jsonrpc.Marshal(errorResponse(resp.ID, errBatchTooLarge))
		}
		if answered > 0 {
			out = append(out, ',')
		}
		out = append(out, data...)
		answered++
	}
	if answered == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(out, ']', '\n'))
}

// skipElement answers an element of a batch whose answer would pass
// MaxBatchResponseBytes, without running it: CodeTooLarge with its id, or
// nothing for a notification (as for any), and counts it.
func (s *Server) skipElement(raw json.RawMessage) *jsonrpc.Response {
	req, invalid := parseRequest(raw)
	if invalid != nil {
		s.metrics.ObserveCall(s.other, jsonrpc.CodeInvalidRequest, 0)
		return invalid
	}
	metric := s.other
	if m, ok := s.methods[req.Method]; ok {
		metric = m.metric
	}
	s.metrics.ObserveCall(metric, agentapi.CodeTooLarge, 0)
	return s.reply(req, nil, errBatchTooLarge)
}

// parseRequest decodes one call; a call that is not a valid JSON-RPC 2.0
// request gets its -32600 answer instead (with its id when that is one).
func parseRequest(raw json.RawMessage) (jsonrpc.Request, *jsonrpc.Response) {
	var req jsonrpc.Request
	if err := json.Unmarshal(raw, &req); err != nil || req.JSONRPC != jsonrpc.Version || req.Method == "" || !validID(req.ID) {
		return req, errorResponse(validOrNullID(req.ID), jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid request"))
	}
	return req, nil
}

// call answers one request and counts it (each element of a batch on its
// own). It returns nil for a notification, and the HTTP status a single
// call travels with (403 for a forbidden single call).
func (s *Server) call(ctx context.Context, caller string, raw json.RawMessage, inBatch bool) (*jsonrpc.Response, int) {
	info := infoOf(ctx)
	// A single call's time includes authentication; an element's is its own.
	start := info.start
	if inBatch {
		start = time.Now()
	}
	resp, status, metric, code := s.dispatch(ctx, info, caller, raw, inBatch)
	s.metrics.ObserveCall(metric, code, time.Since(start))
	return resp, status
}

// dispatch parses, authorizes and runs one call. Besides the answer it
// returns the metrics index of what ran (the route's key) and the JSON-RPC
// code (0 for success).
func (s *Server) dispatch(ctx context.Context, info *requestInfo, caller string, raw json.RawMessage, inBatch bool) (*jsonrpc.Response, int, int, int) {
	req, invalid := parseRequest(raw)
	if invalid != nil {
		return invalid, http.StatusOK, s.other, jsonrpc.CodeInvalidRequest
	}
	if !inBatch {
		info.method = req.Method
	}
	rt, rpcErr := s.route(req, caller)
	if rpcErr != nil {
		if !inBatch {
			info.code = rpcErr.Code
		}
		return s.reply(req, nil, rpcErr), http.StatusOK, s.other, rpcErr.Code
	}
	if !inBatch && rt.key != req.Method {
		info.skill = rt.key
	}
	// Built only when something is logged: most calls log nothing here.
	log := func() *slog.Logger {
		l := s.log.With("request_id", info.id, "caller", caller, "method", req.Method)
		if rt.key != req.Method {
			l = l.With("skill", rt.key)
		}
		return l
	}
	if err := s.authorize(caller, rt); err != nil {
		log().Warn("call denied by policy", "reason", agentapi.ReasonMethodForbidden)
		s.metrics.Refused(agentapi.ReasonMethodForbidden)
		if !inBatch {
			info.code, info.reason = agentapi.CodeForbidden, agentapi.ReasonMethodForbidden
		}
		resp := s.reply(req, nil, refusal(agentapi.CodeForbidden, agentapi.ReasonMethodForbidden, fmt.Sprintf("caller %q may not call %s", caller, rt.key)))
		if inBatch || resp == nil {
			return resp, http.StatusOK, rt.metric, agentapi.CodeForbidden
		}
		return resp, http.StatusForbidden, rt.metric, agentapi.CodeForbidden
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.HandlerTimeout)
	defer cancel()
	start := time.Now()
	result, code, rpcErr := rt.run(ctx, log)
	if !inBatch {
		info.code = code
	}
	// The access line says how a single call ended; this one is for
	// following the elements of a batch.
	if s.log.Enabled(ctx, slog.LevelDebug) {
		log().LogAttrs(ctx, slog.LevelDebug, "call", slog.Int64("latency_ms", time.Since(start).Milliseconds()), slog.Int("code", code))
	}
	if rpcErr != nil {
		return s.reply(req, nil, rpcErr), http.StatusOK, rt.metric, rpcErr.Code
	}
	data, err := jsonrpc.Marshal(result)
	if err != nil {
		log().Error("result does not encode", "error", err)
		if !inBatch {
			info.code = jsonrpc.CodeInternalError
		}
		return s.reply(req, nil, errInternal), http.StatusOK, rt.metric, jsonrpc.CodeInternalError
	}
	if len(data) > maxResultBytes {
		log().Warn("result too large to answer", "bytes", len(data))
		if !inBatch {
			info.code = agentapi.CodeTooLarge
		}
		return s.reply(req, nil, errResultTooLarge), http.StatusOK, rt.metric, agentapi.CodeTooLarge
	}
	return s.reply(req, data, nil), http.StatusOK, rt.metric, code
}

// route is what one request runs, found before authorization.
type route struct {
	// key is what the policy authorizes, and what the request is
	// counted and logged under: the method, or for message/send the
	// skill its DataPart names (the envelope itself grants nothing).
	key string
	// ownOnly marks tasks/get: it reads only what the caller itself
	// created, so it needs no grant beyond the caller's identity.
	ownOnly bool
	// metric is key's index in the agent's metrics.
	metric int
	// run answers the call: a result, or the JSON-RPC error; code is how
	// the call ended (a failed Task's code for message/send).
	run func(ctx context.Context, log func() *slog.Logger) (result any, code int, err *jsonrpc.Error)
}

// route finds what req runs. A method this agent does not offer (every A2A
// method but message/send and tasks/get included) and a skill it does not
// offer are -32601, before authorization.
func (s *Server) route(req jsonrpc.Request, caller string) (route, *jsonrpc.Error) {
	switch req.Method {
	case agentapi.MethodA2ASendMessage:
		return s.routeSendMessage(req, caller)
	case agentapi.MethodA2AGetTask:
		return route{key: req.Method, ownOnly: true, metric: s.metrics.Method(req.Method), run: func(context.Context, func() *slog.Logger) (any, int, *jsonrpc.Error) {
			return s.getTask(caller, req.Params)
		}}, nil
	}
	m, ok := s.methods[req.Method]
	if !ok {
		return route{}, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method not found")
	}
	return route{key: m.Name, metric: m.metric, run: func(ctx context.Context, log func() *slog.Logger) (any, int, *jsonrpc.Error) {
		result, err := s.invoke(ctx, m.Handler, req.Params)
		rpcErr := s.toRPCError(ctx, log, err)
		return result, codeOf(rpcErr), rpcErr
	}}, nil
}

// authorize decides whether caller may run rt: the policy, by rt's key;
// an empty caller (no certificate identity) never.
func (s *Server) authorize(caller string, rt route) error {
	if rt.ownOnly {
		if caller == "" {
			return policy.ErrForbidden
		}
		return nil
	}
	return s.opts.Policy.Allow(caller, rt.key)
}

// invoke runs a handler, turning a panic into an internal error: one bad
// request must not take the agent down.
func (s *Server) invoke(ctx context.Context, h func(context.Context, json.RawMessage) (any, error), params json.RawMessage) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errPanic
			s.log.Error("handler panicked", "request_id", RequestID(ctx), "panic", p)
		}
	}()
	return h(ctx, params)
}

func (s *Server) reply(req jsonrpc.Request, result json.RawMessage, err *jsonrpc.Error) *jsonrpc.Response {
	if req.IsNotification() {
		return nil
	}
	if err != nil {
		return errorResponse(req.ID, err)
	}
	return &jsonrpc.Response{JSONRPC: jsonrpc.Version, Result: result, ID: req.ID}
}

func errorResponse(id json.RawMessage, e *jsonrpc.Error) *jsonrpc.Response {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	return &jsonrpc.Response{JSONRPC: jsonrpc.Version, Error: e, ID: id}
}

// validID: a JSON-RPC id is a string, a number or null (or absent).
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return true
	}
	switch id[0] {
	case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

func validOrNullID(id json.RawMessage) json.RawMessage {
	if len(id) == 0 || !validID(id) {
		return nil
	}
	return id
}

func codeOf(e *jsonrpc.Error) int {
	if e == nil {
		return 0
	}
	return e.Code
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := jsonrpc.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, errInternal)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
