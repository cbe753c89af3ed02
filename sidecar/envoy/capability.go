// Package envoy is the EnvoyService capability: the authenticated, audited
// front of the Envoy admin API beside the app. It reads Envoy's admin
// (internal/envoyadmin: typed config dump with secrets scrubbed, clusters,
// certificates, stats, server info, log levels) and explains what it reads
// (internal/envoyexplain: counts, the listener → route → cluster → endpoint
// tree, rejected and warming resources, findings, route matching). Reads are
// for viewers, mutations for operators, the HTTP tap for capturers; Envoy's
// dangerous endpoints are forwarded only when a flag turns each on. This
// package chooses the admin calls, enforces the limits and maps errors to
// gRPC codes.
//
// The work happens in a worker process (cmd/triage-envoy, package
// sidecar/envoy/worker) that this package starts on the first Envoy call
// and stops after --envoy-worker-idle without calls: linking Envoy's API
// types costs about 12 MiB of RSS from process start, which the sidecar
// itself should not pay while nobody asks about Envoy. This package keeps
// the flags, the permissions (the guard sees EnvoyService as registered
// here), explain's findings, and forwards each call over a private socket
// pair.
package envoy

import (
	"errors"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// Options are the envoy capability's settings.
type Options struct {
	// AdminURL is Envoy's admin: http://127.0.0.1:15000 (Istio),
	// http://127.0.0.1:9901 or unix:///path. Empty turns the capability off.
	AdminURL string
	// Timeout bounds each admin request.
	Timeout time.Duration
	// MaxResponseBytes bounds each admin response.
	MaxResponseBytes int64
	// MaxStats caps the statistics one GetStats returns; it is also the default.
	MaxStats int
	// TapMaxDuration caps a tap's duration; it is also the default.
	TapMaxDuration time.Duration
	// TapMaxBytes caps a tap's output; it is also the default.
	TapMaxBytes int64
	// TapMaxConcurrent is how many taps may run at once.
	TapMaxConcurrent int
	// ExplainTimeout bounds what `triage explain` asks of Envoy.
	ExplainTimeout time.Duration
	// AllowRemote permits a non-loopback admin address.
	AllowRemote bool
	// AllowQuit, AllowRuntimeModify and AllowDrainListeners forward
	// Envoy's dangerous endpoints; each is off by default.
	AllowQuit, AllowRuntimeModify, AllowDrainListeners bool
	// WorkerPath is the triage-envoy binary; empty finds it beside the
	// sidecar's executable, then on PATH.
	WorkerPath string
	// WorkerIdle stops the worker after this long without calls.
	WorkerIdle time.Duration
}

// DefaultOptions are the defaults AddFlags registers.
func DefaultOptions() Options {
	return Options{
		Timeout:          10 * time.Second,
		MaxResponseBytes: 64 << 20,
		WorkerIdle:       5 * time.Minute,
		MaxStats:         10000,
		TapMaxDuration:   60 * time.Second,
		TapMaxBytes:      64 << 20,
		TapMaxConcurrent: 1,
		ExplainTimeout:   3 * time.Second,
	}
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.AdminURL, "envoy-admin", o.AdminURL, "Envoy's admin beside the app: http://127.0.0.1:15000 (Istio), http://127.0.0.1:9901 or unix:///path; empty turns the envoy capability off")
	fs.DurationVar(&o.Timeout, "envoy-timeout", o.Timeout, "longest wait for one Envoy admin answer")
	fs.Int64Var(&o.MaxResponseBytes, "envoy-max-response-bytes", o.MaxResponseBytes, "largest Envoy admin answer read (a config dump, stats)")
	fs.IntVar(&o.MaxStats, "envoy-max-stats", o.MaxStats, "most statistics one call returns (also the default)")
	fs.DurationVar(&o.TapMaxDuration, "envoy-tap-max-duration", o.TapMaxDuration, "longest Envoy HTTP tap (also the default)")
	fs.Int64Var(&o.TapMaxBytes, "envoy-tap-max-bytes", o.TapMaxBytes, "largest output of an Envoy HTTP tap (also the default)")
	fs.IntVar(&o.TapMaxConcurrent, "envoy-tap-max-concurrent", o.TapMaxConcurrent, "Envoy HTTP taps that may run at once")
	fs.DurationVar(&o.ExplainTimeout, "envoy-explain-timeout", o.ExplainTimeout, "longest time triage explain waits for Envoy before it reports it unreachable")
	fs.BoolVar(&o.AllowRemote, "envoy-allow-remote", o.AllowRemote, "allow an --envoy-admin that is not loopback (Envoy's admin is unauthenticated)")
	fs.BoolVar(&o.AllowQuit, "envoy-allow-quit", o.AllowQuit, "forward Quit to Envoy's /quitquitquit (operators only; off by default)")
	fs.BoolVar(&o.AllowRuntimeModify, "envoy-allow-runtime-modify", o.AllowRuntimeModify, "forward ModifyRuntime to Envoy's /runtime_modify (operators only; off by default)")
	fs.StringVar(&o.WorkerPath, "envoy-worker", o.WorkerPath, "the triage-envoy worker binary (default: beside triage-sidecar, then PATH)")
	fs.DurationVar(&o.WorkerIdle, "envoy-worker-idle", o.WorkerIdle, "stop the Envoy worker process after this long without Envoy calls")
	fs.BoolVar(&o.AllowDrainListeners, "envoy-allow-drain-listeners", o.AllowDrainListeners, "forward DrainListeners to Envoy's /drain_listeners (operators only; off by default)")
}

func (o Options) validate() error {
	switch {
	case o.Timeout <= 0:
		return errors.New("--envoy-timeout must be positive")
	case o.MaxResponseBytes < 1<<10:
		return errors.New("--envoy-max-response-bytes must be at least 1024")
	case o.MaxStats < 1:
		return errors.New("--envoy-max-stats must be at least 1")
	case o.TapMaxDuration <= 0:
		return errors.New("--envoy-tap-max-duration must be positive")
	case o.TapMaxBytes < 1<<10:
		return errors.New("--envoy-tap-max-bytes must be at least 1024")
	case o.TapMaxConcurrent < 1:
		return errors.New("--envoy-tap-max-concurrent must be at least 1")
	case o.ExplainTimeout <= 0:
		return errors.New("--envoy-explain-timeout must be positive")
	}
	return nil
}

// Capability returns the envoy row of the capability table, with its own flags.
func Capability() capability.Capability {
	o := DefaultOptions()
	return capability.Capability{
		Name:     "envoy",
		AddFlags: o.AddFlags,
		Register: func(s grpc.ServiceRegistrar, d capability.Deps) (func(), error) { return Register(s, d, o) },
	}
}

// Register registers EnvoyService on s and contributes Envoy's findings to
// explain. Without --envoy-admin the capability is off. Envoy need not be up
// when the sidecar starts: each call reads the admin afresh, and an
// unreachable Envoy is an Unavailable answer (and an explain finding).
func Register(s grpc.ServiceRegistrar, d capability.Deps, o Options) (func(), error) {
	if o.AdminURL == "" {
		return nil, capability.Off("no Envoy admin configured",
			"set --envoy-admin (TRIAGE_ENVOY_ADMIN) to the admin of the Envoy beside the app, e.g. http://127.0.0.1:15000 for Istio")
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := checkAdminURL(o); err != nil {
		return nil, err
	}
	worker, err := findWorker(o.WorkerPath)
	if err != nil {
		return nil, err
	}
	srv := newProxy(o, worker, d)
	triagev1.RegisterEnvoyServiceServer(s, srv)
	if d.Contribute != nil {
		d.Contribute(srv.explain)
	}
	return srv.close, nil
}
