package goroutines

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Synthetic debug=2 dumps: a set of stack templates (mixed states, stack
// depth 5 to 20) instantiated many times, with known per-template counts.

var synthStates = []string{
	"chan receive", "select", "IO wait", "sync.Mutex.Lock", "sleep",
	"semacquire", "running", "sync.WaitGroup.Wait", "chan send",
}

type synthTemplate struct {
	state     string
	locked    bool
	frames    []Frame
	createdBy Frame
}

func synthTemplates(n int) []synthTemplate {
	ts := make([]synthTemplate, n)
	for i := range ts {
		t := synthTemplate{
			state:  synthStates[i%len(synthStates)],
			locked: i%17 == 5,
			createdBy: Frame{
				Function: fmt.Sprintf("example.com/svc.spawn%d", i%5),
				File:     "/src/example.com/svc/spawn.go",
				Line:     100 + i,
			},
		}
		depth := 5 + (i*7)%16
		for k := 0; k < depth; k++ {
			fn := fmt.Sprintf("example.com/svc/pkg%d.(*Worker%d).step%d", k%13, i, k)
			if k%5 == 3 {
				fn = fmt.Sprintf("example.com/svc/pkg%d.handle[...].func%d", k%13, k)
			}
			t.frames = append(t.frames, Frame{
				Function: fn,
				File:     fmt.Sprintf("/src/example.com/svc/pkg%d/file%d.go", k%13, k%7),
				Line:     10 + (i*31+k*17)%900,
			})
		}
		ts[i] = t
	}
	return ts
}

type synthWant struct {
	count            int
	minWait, maxWait time.Duration
	ids              []int64
}

// writeSynthetic writes n goroutines drawn from ts and returns, per
// template index, what grouping must find.
func writeSynthetic(w io.Writer, n int, ts []synthTemplate, seed uint64) (map[int]*synthWant, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	bw := bufio.NewWriterSize(w, 1<<16)
	want := make(map[int]*synthWant)
	for i := 0; i < n; i++ {
		ti := rng.IntN(len(ts))
		t := ts[ti]
		id := int64(i + 1)
		var wait time.Duration
		extra := ""
		if t.state != "running" && rng.IntN(3) == 0 {
			m := 1 + rng.IntN(60)
			wait = time.Duration(m) * time.Minute
			extra += fmt.Sprintf(", %d minutes", m)
		}
		if t.locked {
			extra += ", locked to thread"
		}
		fmt.Fprintf(bw, "goroutine %d [%s%s]:\n", id, t.state, extra)
		for k, f := range t.frames {
			if k%4 == 2 {
				fmt.Fprintf(bw, "%s(...)\n\t%s:%d\n", f.Function, f.File, f.Line)
				continue
			}
			fmt.Fprintf(bw, "%s(0xc%09x, {0x%x, 0x1?})\n\t%s:%d +0x%x\n", f.Function, rng.Uint32(), rng.Uint32()&0xffff, f.File, f.Line, 16+k)
		}
		fmt.Fprintf(bw, "created by %s in goroutine %d\n\t%s:%d +0x%x\n\n", t.createdBy.Function, 1+rng.IntN(50), t.createdBy.File, t.createdBy.Line, 0x45)
		sw, ok := want[ti]
		if !ok {
			sw = &synthWant{minWait: wait, maxWait: wait}
			want[ti] = sw
		}
		sw.count++
		sw.minWait = min(sw.minWait, wait)
		sw.maxWait = max(sw.maxWait, wait)
		if len(sw.ids) < DefaultMaxIDs {
			sw.ids = append(sw.ids, id)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("writing synthetic dump: %w", err)
	}
	return want, nil
}
