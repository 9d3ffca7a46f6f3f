// Package skill defines what an agent offers: named JSON-RPC methods with a
// description. The agent server (agentsvc) routes, authenticates and
// authorizes; a skill only does its work.
package skill

import (
	"context"
	"encoding/json"
)

// Handler runs one method. params is the raw "params" member (possibly
// empty). A returned *jsonrpc.Error chooses the code the caller sees; any
// other error becomes -32603 with no detail leaked.
type Handler func(ctx context.Context, params json.RawMessage) (any, error)

// Method is one JSON-RPC method an agent offers.
type Method struct {
	// Name is the JSON-RPC method name, one of agentapi's Method constants.
	Name string
	// Description is shown in list_skills and the agent card.
	Description string
	Handler     Handler
}
