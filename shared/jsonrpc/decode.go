package jsonrpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// describeJSONError turns a decoding error into a message safe to send back:
// it names the field or offset, never echoes the input.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return fmt.Sprintf("field %q must be %s", typeErr.Field, typeErr.Type)
		}
		return fmt.Sprintf("must be %s", typeErr.Type)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at offset %d", syntaxErr.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of JSON"
	default:
		// encoding/json reports unknown fields as `json: unknown field "x"`.
		msg := err.Error()
		if len(msg) > 120 {
			msg = msg[:120]
		}
		return msg
	}
}
