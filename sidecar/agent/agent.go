// Package agent is the in-process triage agent an app links with two lines in
// main:
//
//	a, err := agent.Start(ctx, agent.Options{})
//	defer a.Close()
//
// It serves triage.agent.v1.AgentService (goroutine dumps, wall-clock and
// pprof profiles, execution traces, runtime stats and the config and state the
// app registers) on a Unix socket whose file mode (0660) is its only boundary:
// the triage sidecar beside the app is its one client and does authentication,
// authorization and audit. It never listens on TCP.
//
// The agent must never hurt the app: every handler and callback recovers
// panics, artifacts stream in chunks of at most 64 KiB with the client's flow
// control as backpressure, one CPU or wall profile runs at a time, and nothing
// runs while idle but the gRPC accept loop (and the execution-trace flight
// recorder when the app opts in).
//
// The agent is a handle, never package globals: everything it keeps hangs off
// the *Agent that Start returns. Its imports are limited to the standard
// library, grpc, protobuf, fgprof (and fgprof's github.com/google/pprof) and the
// generated agentv1 package; a test enforces that.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/trace"
	"sync"
	"time"

	"google.golang.org/grpc"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// processStart approximates when the process started: when this package was
// initialised. It is immutable; the agent keeps no other package state.
var processStart = time.Now()

// Agent is a running agent. Close stops it.
type Agent struct {
	opts     Options
	log      *slog.Logger
	lis      net.Listener
	srv      *grpc.Server
	served   chan struct{} // closed when Serve returns
	flight   *trace.FlightRecorder
	slots    slots
	registry registry

	stopAfter func() bool // unregisters the context.AfterFunc
	closeOnce sync.Once
	closeErr  error
}

// Start serves the agent API until ctx is done or Close is called. It listens
// on o.Listener when set, else on the Unix socket o.Socket (see Options).
func Start(ctx context.Context, o Options) (*Agent, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	a := &Agent{opts: o, log: o.Logger, served: make(chan struct{})}
	a.registry.timeout = o.CallbackTimeout

	lis := o.Listener
	if lis == nil {
		var err error
		if lis, err = listenUnix(o.Socket); err != nil {
			return nil, err
		}
	}
	a.lis = lis

	if o.FlightRecorder {
		fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: o.FlightRecorderWindow, MaxBytes: o.FlightRecorderMaxBytes})
		if err := fr.Start(); err != nil {
			_ = lis.Close()
			return nil, fmt.Errorf("agent: start the execution-trace flight recorder: %w", err)
		}
		a.flight = fr
	}

	a.srv = grpc.NewServer(
		grpc.UnaryInterceptor(a.recoverUnary),
		grpc.StreamInterceptor(a.recoverStream),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.WaitForHandlers(true), // Close returns only once every handler (and its profile) ended
	)
	agentv1.RegisterAgentServiceServer(a.srv, &service{a: a})
	go func() {
		defer close(a.served)
		if err := a.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			a.log.Error("triage agent stopped serving", "addr", lis.Addr().String(), "err", err)
		}
	}()
	// AfterFunc starts no goroutine until ctx is done: nothing runs while idle.
	a.stopAfter = context.AfterFunc(ctx, func() { _ = a.Close() })
	a.log.Debug("triage agent serving", "addr", lis.Addr().String(), "flight_recorder", o.FlightRecorder)
	return a, nil
}

const (
	maxConcurrentStreams = 16
	maxRecvMsgSize       = 64 << 10 // requests are tiny
)

// Addr is the address the agent serves on (the socket path for Unix sockets).
func (a *Agent) Addr() net.Addr { return a.lis.Addr() }

// Close stops serving, cancels running profiles and waits for them, stops the
// flight recorder and removes the socket. It is safe to call more than once.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.stopAfter()
		a.srv.Stop() // closes the listener (unlinking the socket) and cancels every RPC
		<-a.served
		if a.flight != nil {
			a.flight.Stop()
		}
	})
	return a.closeErr
}
