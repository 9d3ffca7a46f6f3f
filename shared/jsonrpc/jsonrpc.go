// Package jsonrpc holds the JSON-RPC 2.0 wire types, the standard error
// codes and strict params decoding (docs/contract.md, JSON-RPC rules). Both
// the agent server and the agent client use it, so a message means the same
// thing on either side of a call; the application codes are in agentapi.
package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the only value of the "jsonrpc" member this package accepts.
const Version = "2.0"

// Standard JSON-RPC 2.0 error codes. The application codes of the ca-a2a
// contract (-32001, -32002, ...) are in shared/agentapi.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
)

// Request is one JSON-RPC request or notification. ID is nil for a
// notification; it is kept raw so that the answer echoes it byte for byte.
type Request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
	ID      json.RawMessage `json:"id,omitempty"`
}

// IsNotification reports whether the request carries no id.
func (r *Request) IsNotification() bool { return len(r.ID) == 0 }

// Response is one JSON-RPC response. Exactly one of Result and Error is set.
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

// Error is a JSON-RPC error object. It is also the Go error that handlers
// return to choose the code a client sees, and that the agent client returns
// when the peer answered with an error.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("jsonrpc: %d %s", e.Code, e.Message) }

// Errorf builds an *Error with a formatted message. The message reaches the
// client: never put internals, paths or secrets in it.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidParams is a shorthand for the most common handler error.
func InvalidParams(format string, args ...any) *Error {
	return Errorf(CodeInvalidParams, format, args...)
}

// CodeOf returns the JSON-RPC code carried by err, or CodeInternalError when
// err carries none.
func CodeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternalError
}

// Marshal encodes v as json.Marshal does, but leaves '<', '>' and '&' as they
// are instead of escaping them as \u003c, \u003e and \u0026, in v and in
// every json.RawMessage it holds. Agents answer application/json, never HTML,
// and the escaping would let a message grow up to sixfold past the size its
// producer counted (the extractor bounds its data to the hop limit). Both
// the server and the client encode with it.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	// Encode ends the value with a newline; Marshal does not.
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// DecodeParams unmarshals params into v, refusing unknown fields and
// trailing data, and maps any failure to -32602.
func DecodeParams(params json.RawMessage, v any) error {
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return InvalidParams("invalid params: %s", describeJSONError(err))
	}
	if dec.More() {
		return InvalidParams("invalid params: trailing data")
	}
	return nil
}
