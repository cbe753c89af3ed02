package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"
)

// DefaultSocket is where the agent listens when neither Options.Socket nor
// TRIAGE_AGENT_SOCKET says otherwise.
const DefaultSocket = "/var/run/triage/agent.sock"

// SocketEnv names the environment variable that overrides DefaultSocket.
const SocketEnv = "TRIAGE_AGENT_SOCKET"

// Options configure Start. The zero value is usable.
type Options struct {
	// Socket is the Unix socket to serve on; default $TRIAGE_AGENT_SOCKET,
	// else DefaultSocket. Its directory is created (0750) when missing; the
	// socket gets mode 0660. A stale socket (nobody answers) is replaced; a
	// live one is an error.
	Socket string
	// Listener, when set, is served instead of Socket: the sidecar serves an
	// in-process agent for itself over an in-memory listener. Close closes it.
	Listener net.Listener

	// FlightRecorder keeps runtime/trace's flight recorder running so that a
	// trace request with last=true returns the moments before the call.
	FlightRecorder bool
	// FlightRecorderWindow is how much history it keeps; default 10s.
	FlightRecorderWindow time.Duration
	// FlightRecorderMaxBytes bounds its memory, taking precedence over the
	// window; default 16 MiB.
	FlightRecorderMaxBytes uint64

	// MaxProfileDuration caps wall, cpu, block and mutex profiles; default 60s.
	MaxProfileDuration time.Duration
	// MaxTraceDuration caps execution traces; default 30s.
	MaxTraceDuration time.Duration
	// MaxTextDumpBytes caps the buffer of a text goroutine dump; default 512 MiB.
	MaxTextDumpBytes int
	// BlockProfileRate is the app's own runtime.SetBlockProfileRate value, if
	// it sets one. The runtime cannot report the block profile rate, so after
	// a block profile the agent restores this value (default 0: off).
	BlockProfileRate int
	// WallCPUBudget is the share of GOMAXPROCS the wall profiler's sampler may
	// use before it lowers its rate; default 0.02 (2%).
	WallCPUBudget float64
	// WallFgprofMaxGoroutines is the goroutine count up to which a default-rate
	// wall profile uses plain fgprof; above it the agent's adaptive sampler
	// runs. Default 1000.
	WallFgprofMaxGoroutines int

	// CallbackTimeout bounds each RegisterConfig/RegisterState callback;
	// default 2s.
	CallbackTimeout time.Duration
	// Logger receives the agent's own diagnostics; default: discarded.
	Logger *slog.Logger
	// Version is reported as agent_version; default "devel".
	Version string
}

func (o Options) withDefaults() Options {
	if o.Socket == "" && o.Listener == nil {
		o.Socket = os.Getenv(SocketEnv)
		if o.Socket == "" {
			o.Socket = DefaultSocket
		}
	}
	if o.FlightRecorderWindow == 0 {
		o.FlightRecorderWindow = 10 * time.Second
	}
	if o.FlightRecorderMaxBytes == 0 {
		o.FlightRecorderMaxBytes = 16 << 20
	}
	if o.MaxProfileDuration == 0 {
		o.MaxProfileDuration = 60 * time.Second
	}
	if o.MaxTraceDuration == 0 {
		o.MaxTraceDuration = 30 * time.Second
	}
	if o.MaxTextDumpBytes == 0 {
		o.MaxTextDumpBytes = 512 << 20
	}
	if o.WallCPUBudget == 0 {
		o.WallCPUBudget = 0.02
	}
	if o.WallFgprofMaxGoroutines == 0 {
		o.WallFgprofMaxGoroutines = 1000
	}
	if o.CallbackTimeout == 0 {
		o.CallbackTimeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "devel"
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.MaxProfileDuration < 0 || o.MaxTraceDuration < 0 || o.FlightRecorderWindow < 0 || o.CallbackTimeout < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if o.WallCPUBudget < 0 || o.WallCPUBudget > 1 {
		errs = append(errs, fmt.Errorf("WallCPUBudget %v is outside (0, 1]", o.WallCPUBudget))
	}
	if o.MaxTextDumpBytes < 0 || o.BlockProfileRate < 0 {
		errs = append(errs, errors.New("MaxTextDumpBytes and BlockProfileRate must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent: options: %w", err)
	}
	return nil
}
