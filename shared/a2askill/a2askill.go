// Package a2askill is the convention by which the A2A protocol's
// message/send calls a skill of a ca-a2a agent (docs/contract.md, A2A), for
// both sides of the call.
//
// The request is a user Message carrying exactly one DataPart
//
//	{"skill": "<method>", "params": {...}}
//
// where the skill is one of the agent's methods (the same name the policy
// authorizes) and params are that method's params. The answer is a Task:
// "completed" with one artifact whose DataPart is the method's result, or
// "failed" with a status message whose DataPart is
//
//	{"error": {"code": ..., "message": ..., "data": ...}}
//
// carrying the JSON-RPC error the method answered.
//
// The protocol types are a2a-go's (github.com/a2aproject/a2a-go/a2a); this
// package only adds the convention on top of them.
package a2askill

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/google/uuid"

	"github.com/ca-a2a/ca-a2a/shared/jsonrpc"
)

// The members of the convention's DataParts.
const (
	KeySkill  = "skill"
	KeyParams = "params"
	KeyError  = "error"
)

// ArtifactName names the artifact that carries a completed task's result.
const ArtifactName = "result"

// maxSkillName bounds the skill name read from a message: skills are
// method names, far shorter.
const maxSkillName = 128

// Call is one skill call read from a message/send request.
type Call struct {
	// Skill is the method to run and the policy key that authorizes it.
	Skill string
	// Params are the method's params exactly as the caller sent them (nil
	// when absent): the method decodes them strictly, as for a JSON-RPC
	// call.
	Params json.RawMessage
	// Message is the caller's message, echoed in the task's history.
	Message *a2a.Message
}

// Errors of ParseSend that the server words with the agent's skills.
var (
	// ErrNoDataPart: the message carries no DataPart (text only, say).
	ErrNoDataPart = errors.New("a2askill: message carries no DataPart")
)

// ParseSend reads the params of a message/send request. A2A params are
// decoded the way a2a-go decodes them (members A2A does not define are
// ignored: A2A objects carry a "kind" discriminator and extension fields);
// the DataPart itself is held to the convention, strictly. Every failure is
// a -32602 *jsonrpc.Error whose message names what is wrong and never
// echoes the input; a message without a DataPart also matches ErrNoDataPart
// (errors.Is), so that the caller can name the skills it offers.
//
// The skill and its params are read from one decoding of the DataPart, the
// raw one: what is authorized is exactly what runs, and params reach the
// method byte for byte (a2a-go's DataPart holds numbers as float64).
func ParseSend(params json.RawMessage) (Call, error) {
	if len(params) == 0 || string(params) == "null" {
		return Call{}, invalid("message/send params are required")
	}
	var p a2a.MessageSendParams
	if err := unmarshal(params, &p); err != nil {
		return Call{}, invalid("invalid params: %s", describe(err, "not A2A MessageSendParams"))
	}
	msg := p.Message
	switch {
	case msg == nil:
		return Call{}, invalid("invalid params: message is required")
	case msg.Role != a2a.MessageRoleUser:
		return Call{}, invalid(`invalid params: message.role must be "user"`)
	case msg.TaskID != "":
		// Every task ends within its message/send: there is nothing to
		// continue. Refused here so that no task id, of this caller or of
		// another, is ever looked up on a caller's word.
		return Call{}, invalid("invalid params: message.taskId is not accepted: every task finishes within its message/send")
	case p.Config != nil && p.Config.PushConfig != nil:
		return Call{}, invalid("invalid params: push notifications are not supported")
	}
	// The raw parts, in the same order a2a-go decoded them.
	var raw struct {
		Message struct {
			Parts []json.RawMessage `json:"parts"`
		} `json:"message"`
	}
	if err := json.Unmarshal(params, &raw); err != nil || len(raw.Message.Parts) != len(msg.Parts) {
		return Call{}, invalid("invalid params: message.parts is malformed")
	}
	dataIdx := -1
	for i, part := range msg.Parts {
		switch part.(type) {
		case a2a.DataPart:
			if dataIdx >= 0 {
				return Call{}, invalid("invalid params: message must carry exactly one DataPart")
			}
			dataIdx = i
		case a2a.FilePart:
			return Call{}, invalid("invalid params: file parts are not accepted: documents are named by their s3_key")
		}
	}
	if dataIdx < 0 {
		return Call{}, &noDataPart{rpc: invalid(`invalid params: message/send needs a DataPart {"skill": NAME, "params": {...}}`)}
	}
	var part struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw.Message.Parts[dataIdx], &part); err != nil || part.Data == nil {
		return Call{}, invalid("invalid params: the DataPart's data must be an object")
	}
	for k := range part.Data {
		if k != KeySkill && k != KeyParams {
			return Call{}, invalid(`invalid params: the DataPart may hold only "skill" and "params"`)
		}
	}
	var skill string
	if err := json.Unmarshal(part.Data[KeySkill], &skill); err != nil || skill == "" || len(skill) > maxSkillName {
		return Call{}, invalid(`invalid params: the DataPart's "skill" must be a method name`)
	}
	c := Call{Skill: skill, Message: msg}
	if ps := bytes.TrimSpace(part.Data[KeyParams]); len(ps) > 0 && string(ps) != "null" {
		if ps[0] != '{' {
			return Call{}, invalid(`invalid params: the DataPart's "params" must be an object`)
		}
		c.Params = json.RawMessage(ps)
	}
	return c, nil
}

// noDataPart is the -32602 error of a message without a DataPart.
type noDataPart struct{ rpc *jsonrpc.Error }

func (e *noDataPart) Error() string   { return e.rpc.Error() }
func (e *noDataPart) Unwrap() []error { return []error{e.rpc, ErrNoDataPart} }

// Message returns a user message that calls skill with params (nil for
// none).
func Message(skill string, params any) (*a2a.Message, error) {
	data := map[string]any{KeySkill: skill}
	if params != nil {
		// Through JSON, so that a struct's tags apply: the DataPart holds
		// exactly what the method would receive as JSON-RPC params.
		raw, err := json.Marshal(params)
		if err != nil {
			return nil, fmt.Errorf("a2askill: params: %w", err)
		}
		obj, err := object(raw)
		if err != nil {
			return nil, fmt.Errorf("a2askill: params: %w", err)
		}
		data[KeyParams] = obj
	}
	return &a2a.Message{ID: NewID(), Role: a2a.MessageRoleUser, Parts: a2a.ContentParts{a2a.DataPart{Data: data}}}, nil
}

// Completed returns the finished task of call: result (a JSON object) as
// the DataPart of its one artifact. The result is not decoded: each of its
// members is held in the DataPart's Data as its raw JSON (a
// json.RawMessage), so the task encodes the result exactly, at the cost of
// one copy of its bytes rather than a tree of maps many times its size.
// Read it with Result, or after a round trip through JSON.
func Completed(call Call, result json.RawMessage) (*a2a.Task, error) {
	data, err := rawObject(result)
	if err != nil {
		return nil, err
	}
	t := newTask(call, a2a.TaskStateCompleted, nil)
	t.Artifacts = []*a2a.Artifact{{ID: a2a.ArtifactID(NewID()), Name: ArtifactName, Parts: a2a.ContentParts{a2a.DataPart{Data: data}}}}
	return t, nil
}

// Failed returns the failed task of call, carrying e in its status message.
func Failed(call Call, e *jsonrpc.Error) *a2a.Task {
	errObj := map[string]any{"code": e.Code, "message": e.Message}
	if e.Data != nil {
		errObj["data"] = e.Data
	}
	status := &a2a.Message{ID: NewID(), Role: a2a.MessageRoleAgent, Parts: a2a.ContentParts{a2a.DataPart{Data: map[string]any{KeyError: errObj}}}}
	return newTask(call, a2a.TaskStateFailed, status)
}

func newTask(call Call, state a2a.TaskState, status *a2a.Message) *a2a.Task {
	now := time.Now().UTC()
	t := &a2a.Task{ID: a2a.TaskID(NewID()), ContextID: call.Message.ContextID, History: []*a2a.Message{call.Message},
		Status: a2a.TaskStatus{State: state, Message: status, Timestamp: &now}}
	if t.ContextID == "" {
		t.ContextID = NewID()
	}
	if status != nil {
		status.TaskID, status.ContextID = t.ID, t.ContextID
	}
	return t
}

// NewID returns a random (version 4) UUID. Task, context, artifact and
// message ids are random on purpose: a2a-go's own ids are version 7, which
// carry their creation time, and nothing about a task should be learnt from
// its id.
func NewID() string { return uuid.NewString() }

// ErrNotFinished: the task is neither completed nor failed.
var ErrNotFinished = errors.New("a2askill: task is not finished")

// ErrNoResult: a completed task carries no result DataPart.
var ErrNoResult = errors.New("a2askill: completed task carries no result")

// Result reads a finished task: for a completed one it decodes the result
// into v (when v is not nil) and returns nil; for a failed one it returns
// the *jsonrpc.Error the skill answered.
func Result(task *a2a.Task, v any) error {
	switch task.Status.State {
	case a2a.TaskStateCompleted:
		for _, art := range task.Artifacts {
			for _, p := range art.Parts {
				if dp, ok := p.(a2a.DataPart); ok {
					if v == nil {
						return nil
					}
					raw, err := json.Marshal(dp.Data)
					if err != nil {
						return fmt.Errorf("a2askill: result: %w", err)
					}
					if err := json.Unmarshal(raw, v); err != nil {
						return fmt.Errorf("a2askill: result: %w", err)
					}
					return nil
				}
			}
		}
		return ErrNoResult
	case a2a.TaskStateFailed:
		e := &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "task failed"}
		if m := task.Status.Message; m != nil {
			for _, p := range m.Parts {
				if dp, ok := p.(a2a.DataPart); ok {
					if raw, err := json.Marshal(dp.Data[KeyError]); err == nil {
						_ = json.Unmarshal(raw, e)
					}
				}
			}
		}
		return e
	default:
		return fmt.Errorf("%w: %s", ErrNotFinished, task.Status.State)
	}
}

// object decodes a JSON object, keeping numbers exact.
func object(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("a2askill: not a JSON object")
	}
	return m, nil
}

// rawObject reads a JSON object one level deep: its members stay raw JSON.
func rawObject(raw json.RawMessage) (map[string]any, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return nil, errors.New("a2askill: not a JSON object")
	}
	m := make(map[string]any, len(members))
	for k, v := range members {
		m[k] = v
	}
	return m, nil
}

// unmarshal is json.Unmarshal that also refuses trailing data.
func unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// describe words a decoding failure without echoing the input: a2a-go's
// own errors quote what they could not read, so only the shape of a type
// error is kept.
func describe(err error, fallback string) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "" && len(typeErr.Field) <= 64 && !strings.ContainsAny(typeErr.Field, "\"\\"):
		return fmt.Sprintf("field %q must be %s", typeErr.Field, typeErr.Type)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at offset %d", syntaxErr.Offset)
	case err.Error() == "trailing data":
		return "trailing data"
	default:
		return fallback
	}
}

func invalid(format string, args ...any) *jsonrpc.Error {
	return jsonrpc.InvalidParams(format, args...)
}
