package sidecar

import (
	"github.com/triage-sh/triage/sidecar/capability"
	"github.com/triage-sh/triage/sidecar/capture"
	"github.com/triage-sh/triage/sidecar/envoy"
	"github.com/triage-sh/triage/sidecar/explain"
	"github.com/triage-sh/triage/sidecar/process"
	"github.com/triage-sh/triage/sidecar/runtime"
)

// DefaultCapabilities is the capability table. Adding a capability is one
// line here and a package of its own under sidecar/.
func DefaultCapabilities() []capability.Capability {
	return []capability.Capability{
		explain.Capability(),
		process.Capability(),
		runtime.Capability(),
		capture.Capability(),
		envoy.Capability(),
	}
}
