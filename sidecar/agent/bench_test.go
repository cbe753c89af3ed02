package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/felixge/fgprof"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// Wall-clock profiling overhead: throughput of a CPU-bound workload (one
// worker per GOMAXPROCS) beside 1,000 / 10,000 / 100,000 idle goroutines,
// with no profiler, plain fgprof at its default 99 Hz, and the agent's wall
// profiler (which adapts). BenchmarkWallOverhead reports ns per work unit;
// TestWallOverheadTable (TRIAGE_BENCH=1) prints the losses side by side.

var wallOverheadCounts = []int{1_000, 10_000, 100_000}

var wallProfilers = []string{"none", "fgprof", "agent"}

// workUnit burns a fixed amount of CPU.
//
//go:noinline
func workUnit() uint64 {
	x := uint64(1)
	for range 200_000 {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

var workSink atomic.Uint64

// idleGoroutines parks n goroutines at stack depths 5 to 20 until release.
func idleGoroutines(n int) (release func()) {
	stop := make(chan struct{})
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			park(5+i%16, &started, stop)
		}()
	}
	started.Wait()
	return func() { close(stop); done.Wait() }
}

//go:noinline
func park(depth int, started *sync.WaitGroup, stop chan struct{}) {
	if depth > 0 {
		park(depth-1, started, stop)
		return
	}
	started.Done()
	<-stop
}

// startProfiler starts one of wallProfilers and returns its stop.
func startProfiler(tb testing.TB, name string) (stop func()) {
	switch name {
	case "none":
		return func() {}
	case "fgprof":
		s := fgprof.Start(io.Discard, fgprof.FormatPprof)
		return func() { _ = s() }
	case "agent":
		ctx, cancel := context.WithCancel(context.Background())
		art := newArtifact(mediaPprof)
		w := newChunkWriter(discardSender(), art)
		o := Options{}.withDefaults()
		cfg := wallConfig{budget: o.WallCPUBudget, fgprofMax: o.WallFgprofMaxGoroutines}
		done := goSafe(func() error { return wallProfile(ctx, w, time.Hour, cfg, art) })
		return func() { cancel(); <-done }
	}
	tb.Fatalf("unknown profiler %q", name)
	return nil
}

// runUnits runs n work units on GOMAXPROCS workers.
func runUnits(n int64) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var x uint64
			for next.Add(1) <= n {
				x += workUnit()
			}
			workSink.Add(x)
		})
	}
	wg.Wait()
}

func BenchmarkWallOverhead(b *testing.B) {
	for _, n := range wallOverheadCounts {
		for _, prof := range wallProfilers {
			b.Run(fmt.Sprintf("goroutines=%d/profiler=%s", n, prof), func(b *testing.B) {
				release := idleGoroutines(n)
				defer release()
				stop := startProfiler(b, prof)
				time.Sleep(250 * time.Millisecond) // past the first look (90 ms at 100,000 goroutines)
				b.ResetTimer()
				runUnits(int64(b.N))
				b.StopTimer()
				stop()
			})
		}
	}
}

// throughput measures work units per second over d.
func throughput(d time.Duration) float64 {
	var units atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var x uint64
			for {
				select {
				case <-stop:
					workSink.Add(x)
					return
				default:
					x += workUnit()
					units.Add(1)
				}
			}
		})
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	return float64(units.Load()) / time.Since(start).Seconds()
}

// TestWallOverheadTable prints throughput loss side by side; it is a
// measurement, run with TRIAGE_BENCH=1 (make bench), and asserts nothing.
func TestWallOverheadTable(t *testing.T) {
	if os.Getenv("TRIAGE_BENCH") == "" {
		t.Skip("a measurement: set TRIAGE_BENCH=1")
	}
	const (
		d      = 3 * time.Second
		rounds = 3 // interleaved, medians reported: the machine's noise is a few percent
	)
	var b strings.Builder
	fmt.Fprintf(&b, "wall-clock profiling overhead, GOMAXPROCS=%d, %d CPU-bound workers, median of %d interleaved %s runs per cell\n",
		runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0), rounds, d)
	fmt.Fprintf(&b, "%-12s %14s %12s %12s   %s\n", "goroutines", "none (units/s)", "fgprof loss", "agent loss", "what the agent did")
	for _, n := range wallOverheadCounts {
		release := idleGoroutines(n)
		rates := map[string][]float64{}
		for range rounds {
			for _, prof := range wallProfilers {
				runtime.GC()
				stop := startProfiler(t, prof)
				time.Sleep(100 * time.Millisecond)
				rates[prof] = append(rates[prof], throughput(d))
				stop()
			}
		}
		// One short agent profile to read what it did.
		art := newArtifact(mediaPprof)
		o := Options{}.withDefaults()
		_ = wallProfile(context.Background(), newChunkWriter(discardSender(), art), 2*time.Second,
			wallConfig{budget: o.WallCPUBudget, fgprofMax: o.WallFgprofMaxGoroutines}, art)
		release()
		none := median(rates["none"])
		loss := func(p string) string { return fmt.Sprintf("%.1f%%", 100*(1-median(rates[p])/none)) }
		fmt.Fprintf(&b, "%-12d %14.0f %12s %12s   %s: %s\n", n, none, loss("fgprof"), loss("agent"), art.attrs["path"], strings.Join(art.notes, "; "))
	}
	t.Log("\n" + b.String())
}

// discardSender drops an artifact stream.
func discardSender() sender {
	return sender{
		header:  func(*agentv1.Header) error { return nil },
		chunk:   func([]byte) error { return nil },
		trailer: func(*agentv1.Trailer) error { return nil },
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
