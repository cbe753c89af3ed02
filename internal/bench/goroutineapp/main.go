// Command goroutineapp is the target of the runtime benchmarks
// (internal/bench/runtimereport): it links the triage agent and parks -n
// goroutines in four wait states (channel receive, sync.Mutex.Lock,
// time.Sleep, select) at recursion depths 5 to 20, then prints "ready" and
// answers one-line commands on stdin with one JSON line on stdout:
//
//	mark     remember the stop-the-world histograms and reset the ticker gap
//	since    pauses since the last mark (see pauses)
//	debug2   time pprof.Lookup("goroutine").WriteTo(w, 2) (what gops stack does)
//	profile  time runtime.GoroutineProfile
//	debug0   time pprof.Lookup("goroutine").WriteTo(w, 0) (pprof's goroutine profile; the agent groups runtime.GoroutineProfile itself instead)
//
// It exits when stdin closes.
//
// Pauses are measured two ways. The precise one is runtime/metrics
// /sched/pauses/total/other:seconds, the non-GC stop-the-world histogram:
// the largest bucket that gained a count since the mark, reported as that
// bucket's upper bound (buckets are a quarter of a power of two wide, so the
// figure is at most ~25% high). The proxy is the largest gap seen by a
// goroutine that sleeps 1 ms in a loop: it includes stop-the-world time and
// any scheduling delay, so it is an upper bound on what a request handler
// in the app would have felt.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triage-sh/triage/sidecar/agent"
)

func main() {
	n := flag.Int("n", 100_000, "goroutines to park")
	socket := flag.String("socket", "", "the agent's Unix socket (empty: no agent)")
	flag.Parse()

	if *socket != "" {
		a, err := agent.Start(context.Background(), agent.Options{Socket: *socket, Version: "goroutineapp"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "goroutineapp:", err)
			os.Exit(1)
		}
		defer a.Close()
	}
	park(*n)
	g := startGapWatcher()
	out := json.NewEncoder(os.Stdout)
	fmt.Println("ready")

	var m mark
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var reply any
		switch cmd := in.Text(); cmd {
		case "mark":
			m = newMark(g)
			reply = map[string]bool{"ok": true}
		case "since":
			reply = m.since(g)
		case "debug2", "debug0", "profile":
			reply = anchor(cmd, g)
		default:
			reply = map[string]string{"error": "unknown command " + cmd}
		}
		if err := out.Encode(reply); err != nil {
			os.Exit(1)
		}
	}
}

// park starts n goroutines, a quarter in each wait state, at depths 5 to
// 20, and returns once every one is about to block.
func park(n int) {
	var started sync.WaitGroup
	started.Add(n)
	var mu sync.Mutex
	mu.Lock() // never unlocked: waitMutex blocks for good
	ch := make(chan struct{})
	for i := range n {
		go descend(5+i%16, (i/16)%4, &started, ch, &mu) // 64 distinct stacks
	}
	started.Wait()
}

// descend recurses to depth frames, then blocks in the wait state kind.
//
//go:noinline
func descend(depth, kind int, started *sync.WaitGroup, ch chan struct{}, mu *sync.Mutex) {
	if depth > 1 {
		descend(depth-1, kind, started, ch, mu)
		return
	}
	started.Done()
	switch kind {
	case 0:
		waitChan(ch)
	case 1:
		waitMutex(mu)
	case 2:
		waitSleep()
	default:
		waitSelect(ch)
	}
}

//go:noinline
func waitChan(ch chan struct{}) { <-ch }

//go:noinline
func waitMutex(mu *sync.Mutex) { mu.Lock() }

//go:noinline
func waitSleep() { time.Sleep(24 * time.Hour) }

//go:noinline
func waitSelect(ch chan struct{}) {
	other := make(chan struct{})
	select {
	case <-ch:
	case <-other:
	}
}

// gapWatcher sleeps 1 ms in a loop and keeps the largest gap between wakes.
type gapWatcher struct{ max atomic.Int64 }

func startGapWatcher() *gapWatcher {
	g := &gapWatcher{}
	go func() {
		prev := time.Now()
		for {
			time.Sleep(time.Millisecond)
			now := time.Now()
			gap := int64(now.Sub(prev))
			prev = now
			for {
				cur := g.max.Load()
				if gap <= cur || g.max.CompareAndSwap(cur, gap) {
					break
				}
			}
		}
	}()
	return g
}

const stwMetric = "/sched/pauses/total/other:seconds"

// mark is a point to measure pauses from.
type mark struct{ hist *metrics.Float64Histogram }

func newMark(g *gapWatcher) mark {
	time.Sleep(5 * time.Millisecond) // let the watcher finish a gap that began before
	g.max.Store(0)
	return mark{hist: readSTW()}
}

func readSTW() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: stwMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return s[0].Value.Float64Histogram()
}

// pauses is what the app felt since a mark.
type pauses struct {
	// STWMaxNs is the upper bound of the largest non-GC stop-the-world
	// histogram bucket that gained a count; STWCount is how many pauses.
	STWMaxNs int64  `json:"stw_max_ns"`
	STWCount uint64 `json:"stw_count"`
	// STWTotalNs adds up the upper bounds of every such pause's bucket.
	STWTotalNs int64 `json:"stw_total_ns"`
	// GapMaxNs is the 1 ms sleeper's largest gap (a proxy).
	GapMaxNs int64 `json:"gap_max_ns"`
}

func (m mark) since(g *gapWatcher) pauses {
	time.Sleep(5 * time.Millisecond) // let the watcher see the end of a pause
	p := pauses{GapMaxNs: g.max.Load()}
	now := readSTW()
	if m.hist == nil || now == nil || len(now.Counts) != len(m.hist.Counts) {
		p.STWMaxNs = -1
		return p
	}
	for i := range now.Counts {
		if d := now.Counts[i] - m.hist.Counts[i]; d > 0 {
			p.STWCount += d
			up := now.Buckets[i+1]
			if math.IsInf(up, 1) {
				up = now.Buckets[i]
			}
			p.STWMaxNs = int64(up * 1e9)
			p.STWTotalNs += int64(d) * p.STWMaxNs
		}
	}
	return p
}

// anchorResult is one in-process measurement.
type anchorResult struct {
	What       string `json:"what"`
	Ns         int64  `json:"ns"`
	Bytes      int64  `json:"bytes"`
	Goroutines int    `json:"goroutines"`
	pauses
}

// anchor runs one in-process collection between a mark and a since.
func anchor(what string, g *gapWatcher) anchorResult {
	runtime.GC() // start from the same heap each time
	m := newMark(g)
	var cw countingWriter
	r := anchorResult{What: what}
	t0 := time.Now()
	switch what {
	case "debug2":
		_ = pprof.Lookup("goroutine").WriteTo(&cw, 2)
	case "debug0":
		_ = pprof.Lookup("goroutine").WriteTo(&cw, 0)
	case "profile":
		recs := make([]runtime.StackRecord, runtime.NumGoroutine()+1000)
		n, ok := runtime.GoroutineProfile(recs)
		for !ok {
			recs = make([]runtime.StackRecord, n+1000)
			n, ok = runtime.GoroutineProfile(recs)
		}
		r.Goroutines = n
	}
	r.Ns = int64(time.Since(t0))
	r.Bytes = cw.n
	r.pauses = m.since(g)
	switch what {
	case "debug2":
		r.Goroutines = cw.goroutines // fewer than there are when pprof cut the text at 64 MiB
	case "debug0":
		r.Goroutines = runtime.NumGoroutine()
	}
	return r
}

// countingWriter counts bytes, and goroutine headers in debug=2 text.
type countingWriter struct {
	n          int64
	goroutines int
}

var header = []byte("\ngoroutine ")

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 && bytes.HasPrefix(p, header[1:]) {
		c.goroutines++
	}
	c.goroutines += bytes.Count(p, header) // a header split across writes is missed; pprof writes once
	c.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)
