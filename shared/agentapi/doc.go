// Package agentapi is the contract that callers and agents agree on: who
// takes part (the roster: agent names, default ports, DNS names and the rule
// that turns a certificate into a caller identity), which methods each agent
// offers and who may call them by default, the params and results of every
// method, the document statuses, the application error codes, and the
// identity provider's defaults.
//
// It is defined once here and imported by both sides of every hop: the
// agents (agentsvc), the Lambda, the local runner and the tests. It holds
// data and small pure functions only, and imports nothing but the standard
// library and certload (for the Authorizer type), so that a caller can
// depend on it without pulling in an agent. docs/contract.md describes the
// same contract for readers.
package agentapi
