// Package agentsvc is the composition root of an agent: it assembles and
// runs one agent (Run), building its role from the configuration (the four
// agents share one binary; AGENT_NAME chooses), and probes a running agent
// for the container health check (Healthcheck).
//
// The packages below it say what is runtime and what is an agent:
//
//	runtime/server   the HTTP surface every agent shares: routes, the auth
//	                 chain, JSON-RPC, the one error mapping, health, agent card
//	runtime/config   the environment, parsed once
//	runtime/policy   who may call which method
//	runtime/skill    what an agent brings: named methods
//	agents/...       the four agents' methods: orchestrator, extractor,
//	                 validator, archivist
//	storage/...      where documents are read (documents) and kept (archive)
//
// An agent package knows nothing of HTTP or authentication; the runtime
// knows nothing of documents. docs/architecture.md draws the whole system.
package agentsvc
