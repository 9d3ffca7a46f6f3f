package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/ca-a2a/ca-a2a/shared/a2askill"
	"github.com/ca-a2a/ca-a2a/shared/agentapi"
	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// The A2A protocol on POST /message (docs/contract.md, A2A). Its JSON-RPC
// methods arrive through the same authentication chain and the same
// JSON-RPC layer as the agent's own, so batches, notifications, limits and
// the error mapping are the same; what differs is how a request names the
// method it runs:
//
//   - message/send runs the skill its DataPart names, under the skill's
//     policy entry (the envelope grants nothing), and answers a Task;
//   - tasks/get reads a task the caller itself created, and so needs no
//     grant beyond the caller's identity;
//   - every other A2A method (message/stream, tasks/cancel, push
//     configuration, ...) is -32601, as for any method not offered.
//
// a2a-go's JSON-RPC HTTP handler cannot sit behind this layer (it takes
// one request per HTTP body, has no batches or notifications, and has no
// place to authorize by skill), and its default request handler runs the
// executor on a context detached from the request, so the skill here runs
// synchronously, within the request's deadline, like any method.

// errTaskNotFound is A2A's TaskNotFoundError (-32001, also the contract's
// not found): a task that expired, was never created, or belongs to
// another caller.
var errTaskNotFound = jsonrpc.Errorf(agentapi.CodeNotFound, "task not found")

// routeSendMessage reads a message/send request: the skill it names is the
// policy key, and running it answers a finished Task.
func (s *Server) routeSendMessage(req jsonrpc.Request, caller string) (route, *jsonrpc.Error) {
	call, err := a2askill.ParseSend(req.Params)
	if err != nil {
		var e *jsonrpc.Error
		if !errors.As(err, &e) {
			e = errInternal
		}
		if errors.Is(err, a2askill.ErrNoDataPart) {
			e = &jsonrpc.Error{Code: e.Code, Message: e.Message + "; skills: " + strings.Join(s.skillIDs(), ", "),
				Data: map[string]any{"skills": s.skillIDs()}}
		}
		return route{}, e
	}
	m, ok := s.methods[call.Skill]
	if !ok {
		// Like a method not offered: -32601 before authorization, and no
		// task. The name is not echoed.
		return route{}, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "skill not found",
			Data: map[string]any{"skills": s.skillIDs()}}
	}
	return route{key: m.Name, metric: m.metric, run: func(ctx context.Context, log func() *slog.Logger) (any, int, *jsonrpc.Error) {
		result, err := s.invoke(ctx, m.Handler, call.Params)
		task, code := finishTask(log, call, result, s.toRPCError(ctx, log, err))
		encoded, err := jsonrpc.Marshal(task)
		if err != nil {
			log().Error("task does not encode", "error", err)
			return nil, jsonrpc.CodeInternalError, errInternal
		}
		// Kept encoded, exactly as long as it is (Marshal's buffer may
		// be twice as large): the store's byte bound is then the memory
		// its tasks take. A notification's task could never be asked
		// for (its id is never sent), nor one over the result bound (the
		// call is answered -32012, and so would tasks/get be): neither
		// is kept.
		switch {
		case req.IsNotification():
		case len(encoded) > maxResultBytes:
			log().Warn("task too large to keep for tasks/get", "bytes", len(encoded))
		case !s.tasks.put(caller, task.ID, bytes.Clone(encoded)):
			log().Warn("task too large to keep for tasks/get", "bytes", len(encoded))
		}
		return json.RawMessage(encoded), code, nil
	}}, nil
}

// finishTask turns the skill's answer into its Task and the code the call
// ended with (0 when completed).
func finishTask(log func() *slog.Logger, call a2askill.Call, result any, rpcErr *jsonrpc.Error) (*a2a.Task, int) {
	if rpcErr == nil {
		data, err := jsonrpc.Marshal(result)
		if err == nil {
			var task *a2a.Task
			if task, err = a2askill.Completed(call, data); err == nil {
				return task, 0
			}
		}
		log().Error("result does not encode as a JSON object", "error", err)
		rpcErr = errInternal
	}
	return a2askill.Failed(call, rpcErr), rpcErr.Code
}

// getTask answers tasks/get from the caller's own tasks.
func (s *Server) getTask(caller string, params json.RawMessage) (any, int, *jsonrpc.Error) {
	var q a2a.TaskQueryParams
	if err := jsonrpc.DecodeParams(params, &q); err != nil {
		e := asRPCError(err)
		return nil, e.Code, e
	}
	if q.ID == "" {
		return nil, jsonrpc.CodeInvalidParams, jsonrpc.InvalidParams("invalid params: id is required")
	}
	encoded, ok := s.tasks.get(caller, q.ID)
	if !ok {
		return nil, errTaskNotFound.Code, errTaskNotFound
	}
	if q.HistoryLength != nil {
		shorter, err := lastMessages(encoded, *q.HistoryLength)
		if err != nil {
			return nil, jsonrpc.CodeInternalError, errInternal
		}
		return shorter, 0, nil
	}
	return json.RawMessage(encoded), 0, nil
}

// lastMessages returns the encoded task with its history cut to its last
// n messages (all of them when it has no more). Only the top level is
// decoded, into raw members: the artifacts are copied, never decoded.
// The kept encoding is shared and not changed.
func lastMessages(encoded []byte, n int) (json.RawMessage, error) {
	var task map[string]json.RawMessage
	if err := json.Unmarshal(encoded, &task); err != nil {
		return nil, err
	}
	var history []json.RawMessage
	if h, ok := task["history"]; ok {
		if err := json.Unmarshal(h, &history); err != nil {
			return nil, err
		}
	}
	if n >= len(history) {
		return json.RawMessage(encoded), nil
	}
	if n <= 0 {
		delete(task, "history") // as a Task without history encodes
	} else {
		cut, err := json.Marshal(history[len(history)-n:])
		if err != nil {
			return nil, err
		}
		task["history"] = cut
	}
	return jsonrpc.Marshal(task)
}

// skillIDs lists the methods offered, sorted (as the card does).
func (s *Server) skillIDs() []string {
	var out []string
	for _, sk := range s.skills() {
		out = append(out, sk.ID)
	}
	return out
}
