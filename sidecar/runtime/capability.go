// Package runtime is the RuntimeService capability: goroutine dumps grouped
// by stack and state, pprof profiles and execution traces, and runtime
// statistics of a Go process. It reaches the app through the triage agent's
// Unix socket (sidecar/agent), or a gops agent with what gops offers, or the
// sidecar itself through an in-process agent, so a newcomer can try
// everything with no app. The engines live elsewhere (the agent,
// internal/goroutines, internal/gops); this package chooses the target,
// enforces the server-side limits and maps errors to gRPC codes.
package runtime

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// Options are the runtime capability's settings.
type Options struct {
	// AgentSocket is the triage agent's Unix socket; "" means none.
	AgentSocket string
	// GopsAddr is a gops agent's host:port; "" means none.
	GopsAddr string
	// GopsPID finds a gops agent through the port file of this pid (shared
	// PID namespace); 0 means none.
	GopsPID int
	// MaxProfileDuration caps profile and trace durations.
	MaxProfileDuration time.Duration
	// MaxDumpBytes caps a goroutine dump read from a target.
	MaxDumpBytes int64
	// TextDumpLimit is the goroutine count up to which explain takes a text
	// dump (a stop-the-world pause) to find long waits.
	TextDumpLimit int
}

// DefaultOptions are the defaults AddFlags registers.
func DefaultOptions() Options {
	return Options{MaxProfileDuration: 60 * time.Second, MaxDumpBytes: 512 << 20, TextDumpLimit: 10000}
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.AgentSocket, "agent-socket", o.AgentSocket, "the triage agent's Unix socket in the app (shared emptyDir)")
	fs.StringVar(&o.GopsAddr, "gops-addr", o.GopsAddr, "a gops agent's host:port, for apps that run gops instead of the triage agent")
	fs.IntVar(&o.GopsPID, "gops-pid", o.GopsPID, "find the app's gops agent through its port file (the pod must share its PID namespace)")
	fs.DurationVar(&o.MaxProfileDuration, "max-profile-duration", o.MaxProfileDuration, "longest profile or trace a caller may ask for")
	fs.Int64Var(&o.MaxDumpBytes, "max-dump-bytes", o.MaxDumpBytes, "largest goroutine dump read from a target")
	fs.IntVar(&o.TextDumpLimit, "explain-text-dump-limit", o.TextDumpLimit, "explain looks for long waits with a stop-the-world text dump only up to this many goroutines")
}

// Capability returns the runtime row of the capability table, with its own flags.
func Capability() capability.Capability {
	o := DefaultOptions()
	return capability.Capability{
		Name:     "runtime",
		AddFlags: o.AddFlags,
		Register: func(s grpc.ServiceRegistrar, d capability.Deps) (func(), error) { return Register(s, d, o) },
	}
}

// Register registers RuntimeService on s, starts the in-process agent that
// serves TARGET_SELF, and contributes the app and runtime findings to explain.
func Register(s grpc.ServiceRegistrar, d capability.Deps, o Options) (func(), error) {
	if o.MaxProfileDuration <= 0 {
		return nil, fmt.Errorf("--max-profile-duration must be positive")
	}
	srv, err := newServer(o, d)
	if err != nil {
		return nil, err
	}
	triagev1.RegisterRuntimeServiceServer(s, srv)
	if d.Contribute != nil {
		d.Contribute(srv.explain)
	}
	return srv.close, nil
}
