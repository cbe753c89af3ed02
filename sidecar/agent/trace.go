package agent

import (
	"context"
	"fmt"
	"runtime/trace"
	"time"
)

// traceFor runs an execution trace for d, or until ctx ends. The runtime
// keeps trace data until the writer takes it, so a slow client costs memory
// for at most MaxTraceDuration's worth of events.
func traceFor(ctx context.Context, w *chunkWriter, d time.Duration, art *artifact) error {
	if err := w.begin(); err != nil {
		return err
	}
	if err := trace.Start(w); err != nil {
		return exhaustedf("busy: the app itself runs an execution trace (%v): retry when it ends", err)
	}
	err := sleepCtx(ctx, d)
	if err != nil {
		w.fail(err) // the trace writer drains without sending
	}
	trace.Stop() // waits until the trace writer has written everything
	return err
}

// flightSnapshot writes the flight recorder's window: what happened before
// the call.
func (a *Agent) flightSnapshot(w *chunkWriter, want time.Duration, art *artifact) error {
	if a.flight == nil || !a.flight.Enabled() {
		return failedPreconditionf("the execution-trace flight recorder is off: start the agent with Options{FlightRecorder: true} (and FlightRecorderWindow) to keep the last seconds of trace, or ask for a forward trace with a duration instead of last")
	}
	win := a.opts.FlightRecorderWindow
	art.attrs["window"] = win.String()
	art.attrs["source"] = "runtime/trace.FlightRecorder"
	if want > win {
		art.notef("asked for the last %s but the flight recorder keeps about %s (Options.FlightRecorderWindow)", want, win)
	}
	if err := w.begin(); err != nil {
		return err
	}
	if _, err := a.flight.WriteTo(w); err != nil {
		return fmt.Errorf("flight recorder snapshot: %w", err)
	}
	return nil
}
