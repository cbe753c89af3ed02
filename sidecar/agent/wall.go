package agent

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"time"

	"github.com/felixge/fgprof"
	"github.com/google/pprof/profile"
)

// defaultWallHz is fgprof's fixed rate.
const defaultWallHz = 99

// wallConfig chooses how a wall profile is sampled.
type wallConfig struct {
	hz        int     // requested rate; 0 means defaultWallHz
	budget    float64 // share of GOMAXPROCS the sampler may use
	fgprofMax int     // goroutine count up to which plain fgprof runs
}

// wallProfile writes a wall-clock (on- and off-CPU) profile of d to w.
//
// Plain fgprof is the default path while the process has few goroutines.
// Above cfg.fgprofMax goroutines, or at a non-default rate, the agent's own
// sampler runs instead (see wallSampler for why fgprof alone cannot adapt).
func wallProfile(ctx context.Context, w *chunkWriter, d time.Duration, cfg wallConfig, art *artifact) error {
	n := runtime.NumGoroutine()
	art.counters["goroutines_at_start"] = uint64(n)
	if cfg.hz == 0 && n <= cfg.fgprofMax {
		return fgprofWall(ctx, w, d, art)
	}
	hz := cfg.hz
	if hz == 0 {
		hz = defaultWallHz
	}
	art.attrs["path"] = "sampler"
	art.attrs["requested_rate_hz"] = strconv.Itoa(hz)
	if err := w.begin(); err != nil {
		return err
	}
	s := &wallSampler{stacks: map[[32]uintptr]*wallStack{}}
	st, err := s.run(ctx, d, hz, cfg.budget*float64(runtime.GOMAXPROCS(0)))
	if err != nil {
		w.fail(err)
		return err
	}
	st.describe(art, hz, cfg.budget)
	if err := s.export(st, d).Write(w); err != nil {
		return fmt.Errorf("write the wall profile: %w", err)
	}
	return nil
}

// fgprofWall runs plain fgprof at its fixed 99 Hz.
func fgprofWall(ctx context.Context, w *chunkWriter, d time.Duration, art *artifact) error {
	art.attrs["path"] = "fgprof"
	art.attrs["rate_hz"] = strconv.Itoa(defaultWallHz)
	art.notef("plain fgprof at %d Hz: %d goroutines is within Options.WallFgprofMaxGoroutines", defaultWallHz, art.counters["goroutines_at_start"])
	if err := w.begin(); err != nil {
		return err
	}
	stop := fgprof.Start(w, fgprof.FormatPprof)
	if err := sleepCtx(ctx, d); err != nil {
		w.fail(err)
		_ = stop() // ends fgprof's goroutine; its write fails at once
		return err
	}
	if err := stop(); err != nil {
		return fmt.Errorf("fgprof: %w", err)
	}
	return nil
}

// wallSampler is the agent's adaptive wall-clock sampler.
//
// Why not fgprof alone: fgprof's API is Start(w, format) with a fixed 99 Hz
// ticker, and every tick is a runtime.GoroutineProfile of every goroutine,
// whose cost grows with their number (milliseconds at 10,000, tens at
// 100,000): at 99 Hz that takes a whole core from the app. The runtime
// offers no way to look at a subset of goroutines, so this sampler adapts
// the rate instead: it times each look and stretches the interval so the
// sampler uses at most a budget share of GOMAXPROCS, and weights every
// sample by the wall time it stands for, so the profile's time values still
// add up to the window whatever the rate.
type wallSampler struct {
	recs   []runtime.StackRecord
	stacks map[[32]uintptr]*wallStack
	self   string // the sampler's own function, left out of the profile
}

// wallStack accumulates one distinct stack.
type wallStack struct {
	count int64 // goroutine observations
	ns    int64 // wall time they stand for
}

// wallStats describes a run for the trailer.
type wallStats struct {
	looks, observations int64
	lookTotal, lookMax  time.Duration
	maxGoroutines       int
	elapsed             time.Duration
}

// run samples until d has passed or ctx ends.
func (s *wallSampler) run(ctx context.Context, d time.Duration, hz int, maxShare float64) (wallStats, error) {
	var st wallStats
	minInterval := time.Second / time.Duration(hz)
	start := time.Now()
	deadline := start.Add(d)
	var costEWMA time.Duration
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("wall profile stopped early, the client is gone: %w", ctx.Err())
		case <-timer.C:
		}
		t0 := time.Now()
		if !t0.Before(deadline) {
			break
		}
		recs := s.collect()
		collect := time.Since(t0)
		// Plan the interval this look stands for from what looks cost.
		est := max(collect, costEWMA)
		interval := max(minInterval, time.Duration(float64(est)/maxShare))
		s.add(recs, min(interval, deadline.Sub(t0)))
		cost := time.Since(t0)
		if costEWMA == 0 {
			costEWMA = cost
		} else {
			costEWMA = (costEWMA*3 + cost) / 4
		}
		st.looks++
		st.observations += int64(len(recs))
		st.lookTotal += cost
		st.lookMax = max(st.lookMax, cost)
		st.maxGoroutines = max(st.maxGoroutines, len(recs))
		timer.Reset(time.Until(t0.Add(interval)))
	}
	st.elapsed = time.Since(start)
	return st, nil
}

// collect returns every goroutine's stack (one runtime.GoroutineProfile).
func (s *wallSampler) collect() []runtime.StackRecord {
	if s.self == "" {
		pc := make([]uintptr, 1)
		runtime.Callers(1, pc)
		f, _ := runtime.CallersFrames(pc).Next()
		s.self = f.Function
	}
	for {
		n, ok := runtime.GoroutineProfile(s.recs)
		if ok {
			return s.recs[:n]
		}
		s.recs = make([]runtime.StackRecord, n+n/10+16)
	}
}

// add counts each stack once per goroutine, weighted by weight.
func (s *wallSampler) add(recs []runtime.StackRecord, weight time.Duration) {
	for i := range recs {
		ws := s.stacks[recs[i].Stack0]
		if ws == nil {
			ws = &wallStack{}
			s.stacks[recs[i].Stack0] = ws
		}
		ws.count++
		ws.ns += int64(weight)
	}
}

// describe puts what the sampler did in the trailer.
func (st wallStats) describe(art *artifact, hz int, budget float64) {
	art.counters["samples"] = uint64(st.looks)
	art.counters["goroutine_samples"] = uint64(st.observations)
	art.counters["max_goroutines"] = uint64(st.maxGoroutines)
	art.counters["sampler_cpu_ns"] = uint64(st.lookTotal)
	if st.looks == 0 || st.elapsed <= 0 {
		return
	}
	avg := st.lookTotal / time.Duration(st.looks)
	rate := float64(st.looks) / st.elapsed.Seconds()
	art.counters["look_avg_ns"] = uint64(avg)
	art.counters["look_max_ns"] = uint64(st.lookMax)
	art.counters["rate_millihz"] = uint64(math.Round(rate * 1000))
	if rate < float64(hz)*0.9 {
		art.notef("sampled at %.1f Hz instead of %d Hz: one look at up to %d goroutines took %s on average, and the sampler keeps to %.0f%% of GOMAXPROCS (Options.WallCPUBudget); each sample is weighted by the wall time it stands for",
			rate, hz, st.maxGoroutines, avg.Round(time.Microsecond), budget*100)
	} else {
		art.notef("sampled every goroutine at %.1f Hz (%d goroutines at most, %s per look)", rate, st.maxGoroutines, avg.Round(time.Microsecond))
	}
}

// export builds the profile: samples/count and time/nanoseconds per stack,
// like fgprof's, with the sampler's own stack left out.
func (s *wallSampler) export(st wallStats, d time.Duration) *profile.Profile {
	m := &profile.Mapping{ID: 1, HasFunctions: true}
	period := int64(d)
	if st.looks > 0 {
		period = int64(st.elapsed) / st.looks
	}
	p := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "time", Unit: "nanoseconds"}},
		PeriodType:    &profile.ValueType{Type: "wallclock", Unit: "nanoseconds"},
		Period:        period,
		TimeNanos:     time.Now().Add(-st.elapsed).UnixNano(),
		DurationNanos: int64(st.elapsed),
		Mapping:       []*profile.Mapping{m},
	}
	type fnKey struct{ name, file string }
	type locKey struct {
		fn   fnKey
		line int
	}
	fns := map[fnKey]*profile.Function{}
	locs := map[locKey]*profile.Location{}
next:
	for key, ws := range s.stacks {
		rec := runtime.StackRecord{Stack0: key}
		frames := runtime.CallersFrames(rec.Stack())
		sample := &profile.Sample{Value: []int64{ws.count, ws.ns}}
		for {
			f, more := frames.Next()
			if f.Function == s.self {
				continue next
			}
			fk := fnKey{f.Function, f.File}
			fn := fns[fk]
			if fn == nil {
				fn = &profile.Function{ID: uint64(len(p.Function) + 1), Name: f.Function, SystemName: f.Function, Filename: f.File}
				fns[fk] = fn
				p.Function = append(p.Function, fn)
			}
			lk := locKey{fk, f.Line}
			loc := locs[lk]
			if loc == nil {
				loc = &profile.Location{ID: uint64(len(p.Location) + 1), Mapping: m, Line: []profile.Line{{Function: fn, Line: int64(f.Line)}}}
				locs[lk] = loc
				p.Location = append(p.Location, loc)
			}
			sample.Location = append(sample.Location, loc)
			if !more {
				break
			}
		}
		p.Sample = append(p.Sample, sample)
	}
	return p
}
