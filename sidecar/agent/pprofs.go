package agent

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/google/pprof/profile"
)

// defaultCPUHz is runtime/pprof's CPU sampling rate.
const defaultCPUHz = 100

// cpuProfile runs the CPU profiler for d, or until ctx ends.
//
// A non-default rate is set with runtime.SetCPUProfileRate before
// pprof.StartCPUProfile, the only way the standard library offers; the
// runtime then prints one warning line ("cannot set cpu profile rate until
// previous profile has finished") on the app's stderr, which the trailer notes.
func cpuProfile(ctx context.Context, w *chunkWriter, d time.Duration, hz int, art *artifact) error {
	if hz == 0 {
		hz = defaultCPUHz
	}
	art.attrs["rate_hz"] = strconv.Itoa(hz)
	if err := w.begin(); err != nil {
		return err
	}
	if hz != defaultCPUHz {
		runtime.SetCPUProfileRate(hz)
		art.notef("rate %d Hz set with runtime.SetCPUProfileRate: the runtime printed a warning on the app's stderr", hz)
	}
	if err := pprof.StartCPUProfile(w); err != nil {
		return exhaustedf("busy: the app itself runs a CPU profile (%v): retry when it ends", err)
	}
	err := sleepCtx(ctx, d)
	pprof.StopCPUProfile() // waits for the profile writer: nothing is left running
	if err != nil {
		w.fail(err)
		return err
	}
	return nil
}

// snapshotProfile writes a named pprof profile as it is now.
func snapshotProfile(w *chunkWriter, name string, art *artifact) error {
	p := pprof.Lookup(name)
	if p == nil {
		return fmt.Errorf("no %s profile in this runtime", name)
	}
	art.counters["records"] = uint64(p.Count())
	if err := w.begin(); err != nil {
		return err
	}
	if err := p.WriteTo(w, 0); err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	return nil
}

// defaultBlockRateNs samples blocking events of 10µs or more (and shorter
// ones in proportion).
const defaultBlockRateNs = 10_000

// blockProfile sets the block profile rate for d, restores it, and writes
// what was recorded in the window (a delta of two snapshots, since the
// runtime's profile accumulates from process start).
//
// The runtime cannot report the block rate in force, so it is restored to
// appRate: Options.BlockProfileRate, 0 unless the app declared its own.
func blockProfile(ctx context.Context, w *chunkWriter, d time.Duration, rate, appRate int, art *artifact) error {
	if rate == 0 {
		rate = defaultBlockRateNs
	}
	art.attrs["rate_ns"] = strconv.Itoa(rate)
	art.attrs["restored_rate_ns"] = strconv.Itoa(appRate)
	return deltaProfile(ctx, w, "block", d, art,
		func() { runtime.SetBlockProfileRate(rate) },
		func() { runtime.SetBlockProfileRate(appRate) })
}

// defaultMutexFraction reports one in ten contention events.
const defaultMutexFraction = 10

// mutexProfile sets the mutex profile fraction for d, restores the previous
// fraction (which the runtime does report), and writes the window's delta.
func mutexProfile(ctx context.Context, w *chunkWriter, d time.Duration, fraction int, art *artifact) error {
	if fraction == 0 {
		fraction = defaultMutexFraction
	}
	prev := runtime.SetMutexProfileFraction(-1)
	art.attrs["fraction"] = strconv.Itoa(fraction)
	art.attrs["restored_fraction"] = strconv.Itoa(prev)
	return deltaProfile(ctx, w, "mutex", d, art,
		func() { runtime.SetMutexProfileFraction(fraction) },
		func() { runtime.SetMutexProfileFraction(prev) })
}

// deltaProfile snapshots the named profile, turns sampling on, waits d (or
// until ctx ends), restores sampling, and writes the second snapshot minus
// the first. The snapshots are bounded by the number of distinct stacks, not
// by the window.
func deltaProfile(ctx context.Context, w *chunkWriter, name string, d time.Duration, art *artifact, on, restore func()) (err error) {
	p := pprof.Lookup(name)
	before, err := parseSnapshot(p)
	if err != nil {
		return err
	}
	on()
	waited := sleepCtx(ctx, d)
	restore()
	if waited != nil {
		return waited
	}
	after, err := parseSnapshot(p)
	if err != nil {
		return err
	}
	ts := after.TimeNanos
	before.Scale(-1)
	delta, err := profile.Merge([]*profile.Profile{before, after})
	if err != nil {
		return fmt.Errorf("%s profile delta: %w", name, err)
	}
	delta.TimeNanos = ts
	delta.DurationNanos = d.Nanoseconds()
	art.counters["samples"] = uint64(len(delta.Sample))
	if err := w.begin(); err != nil {
		return err
	}
	if err := delta.Write(w); err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	return nil
}

func parseSnapshot(p *pprof.Profile) (*profile.Profile, error) {
	var b bytes.Buffer
	if err := p.WriteTo(&b, 0); err != nil {
		return nil, fmt.Errorf("%s profile: %w", p.Name(), err)
	}
	pp, err := profile.Parse(&b)
	if err != nil {
		return nil, fmt.Errorf("parse the %s profile: %w", p.Name(), err)
	}
	return pp, nil
}
