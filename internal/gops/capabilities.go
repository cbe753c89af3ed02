package gops

import (
	"fmt"
	"strings"
)

// Capability is one triage runtime feature and whether a gops agent can
// serve it.
type Capability struct {
	// Feature is the feature's name: a profile type as the CLI spells it
	// (wall, cpu, heap, ...) or a runtime view (stack, goroutines, ...).
	Feature string
	// Gops reports whether a gops agent serves it.
	Gops bool
	// Note says how gops serves it, or why it cannot.
	Note string
}

// Capabilities lists what a gops agent offers and what needs the triage
// agent, so that the sidecar can say which in explain and in
// FailedPrecondition messages.
var Capabilities = []Capability{
	{"stack", true, "text goroutine dump (pprof debug=2), grouped from the parsed text; stops the world for the whole dump"},
	{"memstats", true, "runtime.MemStats summary as text"},
	{"stats", true, "goroutine count, threads created, GOMAXPROCS, CPUs"},
	{"gc", true, "runs a garbage collection"},
	{"gc-percent", true, "sets GOGC"},
	{"version", true, "the Go version only"},
	{"heap", true, "heap profile (pprof), with allocation samples"},
	{"allocs", true, "the heap profile's allocation samples (pprof -sample_index=alloc_space)"},
	{"cpu", true, "CPU profile of a fixed 30 s; no other gops request is served meanwhile"},
	{"trace", true, "execution trace of a fixed 5 s"},
	{"wall", false, "wall-clock profiling (fgprof) runs inside the app"},
	{"goroutines", false, "structured goroutines from the runtime, without a stop-the-world text dump"},
	{"block", false, "block profile rates are set in the app for the duration"},
	{"mutex", false, "mutex profile rates are set in the app for the duration"},
	{"goroutine", false, "the goroutine profile in pprof format"},
	{"threadcreate", false, "the thread-creation profile"},
	{"trace-last", false, "the flight recorder keeps the last seconds of trace in the app"},
	{"config", false, "config and state are registered in the app with agent.RegisterConfig and RegisterState"},
	{"metrics", false, "runtime/metrics, GOMEMLIMIT and build info beyond the Go version"},
}

// Supports reports whether a gops agent serves feature.
func Supports(feature string) bool {
	for _, c := range Capabilities {
		if c.Feature == feature {
			return c.Gops
		}
	}
	return false
}

// NeedsTriageAgent returns the message for a feature a gops agent cannot
// serve: what needs the triage agent, why, and what gops does offer.
func NeedsTriageAgent(feature string) string {
	why := "gops does not offer it"
	for _, c := range Capabilities {
		if c.Feature == feature && !c.Gops {
			why = c.Note
		}
	}
	var offered []string
	for _, c := range Capabilities {
		if c.Gops {
			offered = append(offered, c.Feature)
		}
	}
	return fmt.Sprintf("%s needs the triage agent (%s): link sidecar/agent in the app and point the sidecar at its socket "+
		"with --agent-socket; the target runs a gops agent, which offers only %s",
		feature, why, strings.Join(offered, ", "))
}
