// Package gops is a client for the wire protocol of the gops agent
// (github.com/google/gops/agent), for apps that run gops instead of the
// triage agent. It does not import the gops module; the protocol is small
// enough to speak directly (see protocol.go).
//
// The protocol, as implemented by gops v0.3.28's agent:
//
//   - The agent listens on TCP (127.0.0.1:0 by default) and writes the port,
//     in decimal, to the port file <config dir>/<pid> (see FindAddr).
//   - A client connects and writes one signal byte (plus, for SetGCPercent
//     only, a zig-zag varint payload). The agent writes its reply and closes
//     the connection; end of file marks the end of a reply. There is no
//     framing, no status and no error reply.
//   - The agent serves one connection at a time, in its accept loop: a
//     30-second CPU profile holds every other request for 30 seconds.
//   - When a request fails inside the agent (a CPU profile or trace while
//     one is already running, a write to a client that went away), the agent
//     prints to the app's stderr and does not close the connection. A client
//     therefore cannot tell "failed" from "slow": Client bounds every call with
//     Timeout and says so in the error.
//   - An unknown signal gets an empty reply.
//
// Every Client method streams or reads the reply under a byte cap (MaxBytes,
// ErrTooLarge beyond it) and under ctx: cancelling ctx closes the connection
// at once. Capabilities says which triage features a gops agent can serve
// and which need the triage agent.
package gops
