package gops

import "errors"

var (
	// ErrNoAgent means nothing accepts connections at the gops address
	// (connection refused). The sidecar reports it as Unavailable.
	ErrNoAgent = errors.New("no gops agent")

	// ErrTooLarge means a reply exceeded the client's MaxBytes. The bytes up
	// to the cap were written; the rest was not read.
	ErrTooLarge = errors.New("gops reply too large")

	// ErrBadReply means the agent replied with something this client does
	// not understand (an empty reply, for instance, is what gops sends for an
	// unknown signal).
	ErrBadReply = errors.New("unexpected gops reply")
)

// hintNoAgent is what to do when no agent answers.
const hintNoAgent = "start one in the app with agent.Listen (github.com/google/gops/agent), " +
	"or link the triage agent (sidecar/agent) and use --agent-socket"
