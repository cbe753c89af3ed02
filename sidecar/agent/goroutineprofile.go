package agent

import (
	"fmt"
	"io"
	"runtime"

	"github.com/google/pprof/profile"
)

// maxProfileRetries bounds the GoroutineProfile size races (goroutines
// started between sizing the slice and collecting).
const maxProfileRetries = 5

// writeGoroutineProfile writes a goroutine profile in pprof format, built
// from runtime.GoroutineProfile. pprof.Lookup("goroutine").WriteTo(w, 0)
// takes about 1.85x as long as runtime.GoroutineProfile at 100,000
// goroutines because it keys every record by its formatted stack; here the
// records are grouped by their PC arrays (a map keyed by the fixed-size
// array), and only the distinct stacks are symbolised. The price: pprof
// labels are not available through runtime.GoroutineProfile, and stacks
// deeper than 32 frames are cut (marked with a "truncated" frame).
func writeGoroutineProfile(w io.Writer) (goroutines int, err error) {
	var records []runtime.StackRecord
	n := runtime.NumGoroutine()
	for range maxProfileRetries {
		records = make([]runtime.StackRecord, n+n/8+16)
		var ok bool
		if n, ok = runtime.GoroutineProfile(records); ok {
			records = records[:n]
			break
		}
		records = nil
	}
	if records == nil {
		return 0, fmt.Errorf("goroutine profile: the goroutine count kept growing while collecting")
	}
	counts := make(map[[32]uintptr]int64, 64)
	for i := range records {
		counts[records[i].Stack0]++
	}
	records = nil // let the collector have the big slice back before symbolising

	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "goroutine", Unit: "count"}},
		PeriodType: &profile.ValueType{Type: "goroutine", Unit: "count"},
		Period:     1,
	}
	locs := map[uintptr]*profile.Location{}
	funcs := map[string]*profile.Function{}
	for stack, count := range counts {
		s := &profile.Sample{Value: []int64{count}}
		for _, pc := range stack {
			if pc == 0 {
				break
			}
			s.Location = append(s.Location, location(p, locs, funcs, pc))
		}
		if stack[len(stack)-1] != 0 {
			s.Location = append(s.Location, truncatedLocation(p, funcs))
		}
		p.Sample = append(p.Sample, s)
	}
	if err := p.Write(w); err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	return n, nil
}

// location returns the profile location of a return PC, with the inlined
// calls at it, symbolising each PC once.
func location(p *profile.Profile, locs map[uintptr]*profile.Location, funcs map[string]*profile.Function, pc uintptr) *profile.Location {
	if l, ok := locs[pc]; ok {
		return l
	}
	l := &profile.Location{ID: uint64(len(p.Location) + 1), Address: uint64(pc)}
	frames := runtime.CallersFrames([]uintptr{pc})
	for {
		fr, more := frames.Next()
		name := fr.Function
		if name == "" {
			name = "?"
		}
		l.Line = append(l.Line, profile.Line{Function: function(p, funcs, name, fr.File), Line: int64(fr.Line)})
		if !more {
			break
		}
	}
	p.Location = append(p.Location, l)
	locs[pc] = l
	return l
}

func function(p *profile.Profile, funcs map[string]*profile.Function, name, file string) *profile.Function {
	key := name + "\x00" + file
	if f, ok := funcs[key]; ok {
		return f
	}
	f := &profile.Function{ID: uint64(len(p.Function) + 1), Name: name, SystemName: name, Filename: file}
	p.Function = append(p.Function, f)
	funcs[key] = f
	return f
}

// truncatedLocation marks a stack cut at 32 frames.
func truncatedLocation(p *profile.Profile, funcs map[string]*profile.Function) *profile.Location {
	l := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: function(p, funcs, "(truncated at 32 frames)", "")}}}
	p.Location = append(p.Location, l)
	return l
}
