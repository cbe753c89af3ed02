package gops_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/triage-sh/triage/internal/gops"
)

// These tests talk to the real gops agent in a child process (testapp_test.go).

// countParked counts the goroutines of a debug=2 dump that have a
// parkedInTestApp frame, and all goroutines.
func countParked(dump string) (parked, total int) {
	for block := range strings.SplitSeq(dump, "\n\n") {
		block = strings.TrimSpace(block)
		if !strings.HasPrefix(block, "goroutine ") {
			continue
		}
		total++
		for line := range strings.Lines(block) {
			if strings.HasPrefix(line, parkedFrame) {
				parked++
				break
			}
		}
	}
	return parked, total
}

func TestRealAgent(t *testing.T) {
	t.Parallel()
	_, addr := startTestApp(t)
	c := &gops.Client{Addr: addr, Timeout: 30 * time.Second}
	ctx := t.Context()

	t.Run("stack", func(t *testing.T) {
		// The goroutines may still be on their way to parking: look again
		// for a while, but never accept more than parkedGoroutines.
		var parked, total int
		var n int64
		for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
			var b bytes.Buffer
			var err error
			n, err = c.Stack(ctx, &b)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(b.Len()) {
				t.Fatalf("Stack returned %d, wrote %d bytes", n, b.Len())
			}
			parked, total = countParked(b.String())
			if parked > parkedGoroutines {
				t.Fatalf("%d goroutines in parkedInTestApp, want %d:\n%s", parked, parkedGoroutines, b.String())
			}
			if parked == parkedGoroutines {
				break
			}
		}
		if parked != parkedGoroutines || total <= parkedGoroutines {
			t.Fatalf("dump has %d goroutines, %d in parkedInTestApp; want %d of more", total, parked, parkedGoroutines)
		}
	})

	t.Run("version", func(t *testing.T) {
		v, err := c.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != runtime.Version() { // the child is this binary
			t.Fatalf("Version = %q, want %q", v, runtime.Version())
		}
	})

	t.Run("stats", func(t *testing.T) {
		st, err := c.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Goroutines < parkedGoroutines || st.OSThreads < 1 || st.GOMAXPROCS < 1 || st.NumCPU != runtime.NumCPU() {
			t.Fatalf("Stats = %+v, want >= %d goroutines and NumCPU %d", st, parkedGoroutines, runtime.NumCPU())
		}
	})

	t.Run("memstats", func(t *testing.T) {
		s, err := c.MemStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"heap-alloc: ", "num-gc: ", "gc-cpu-fraction: "} {
			if !strings.Contains(s, want) {
				t.Errorf("MemStats lacks %q:\n%s", want, s)
			}
		}
	})

	t.Run("gc", func(t *testing.T) {
		before := numGC(t, c)
		if err := c.GC(ctx); err != nil {
			t.Fatal(err)
		}
		if after := numGC(t, c); after <= before {
			t.Fatalf("num-gc %d after GC, was %d", after, before)
		}
	})

	t.Run("set gc percent", func(t *testing.T) {
		prev, err := c.SetGCPercent(ctx, 150)
		if err != nil {
			t.Fatal(err)
		}
		if prev != 100 {
			t.Errorf("previous GC percent %d, want 100 (the default)", prev)
		}
		if prev, err = c.SetGCPercent(ctx, -1); err != nil || prev != 150 {
			t.Fatalf("SetGCPercent(-1) = %d, %v; want 150", prev, err)
		}
		if _, err := c.SetGCPercent(ctx, 100); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("heap profile", func(t *testing.T) {
		var b bytes.Buffer
		n, err := c.HeapProfile(ctx, &b)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(b.Len()) || !bytes.HasPrefix(b.Bytes(), []byte{0x1f, 0x8b}) {
			t.Fatalf("heap profile: %d bytes reported, %d written, want gzip", n, b.Len())
		}
		p, err := profile.Parse(&b)
		if err != nil {
			t.Fatalf("heap profile does not parse: %v", err)
		}
		if len(p.SampleType) == 0 || p.SampleType[len(p.SampleType)-1].Type != "inuse_space" {
			t.Fatalf("heap profile sample types %v", p.SampleType)
		}
	})

	t.Run("max bytes", func(t *testing.T) {
		small := &gops.Client{Addr: addr, Timeout: 30 * time.Second, MaxBytes: 100}
		var b bytes.Buffer
		n, err := small.Stack(ctx, &b)
		if !errors.Is(err, gops.ErrTooLarge) {
			t.Fatalf("Stack with MaxBytes 100: %v, want ErrTooLarge", err)
		}
		if n != 100 || b.Len() != 100 || !strings.HasPrefix(b.String(), "goroutine ") {
			t.Fatalf("Stack with MaxBytes 100 wrote %d (reported %d): %q", b.Len(), n, b.String())
		}
		// The agent gets a write error on the closed connection and goes on.
		if _, err := c.Version(ctx); err != nil {
			t.Fatalf("agent unusable after a capped reply: %v", err)
		}
	})
}

// numGC reads num-gc from the agent's memstats.
func numGC(t *testing.T, c *gops.Client) int {
	t.Helper()
	s, err := c.MemStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(s) {
		var n int
		if _, err := fmt.Sscanf(line, "num-gc: %d", &n); err == nil {
			return n
		}
	}
	t.Fatalf("no num-gc in memstats:\n%s", s)
	return 0
}

func TestRealAgentTrace(t *testing.T) {
	t.Parallel()
	_, addr := startTestApp(t)
	c := &gops.Client{Addr: addr, Timeout: 30 * time.Second}

	var b bytes.Buffer
	n, err := c.Trace(t.Context(), &b)
	if err != nil {
		t.Fatal(err)
	}
	// A Go execution trace starts "go 1.NN trace\x00\x00\x00".
	head := b.String()[:min(b.Len(), 16)]
	if n != int64(b.Len()) || n < 1000 || !strings.HasPrefix(head, "go 1.") || !strings.Contains(head, " trace\x00") {
		t.Fatalf("trace of %d bytes (reported %d) starts %q, want \"go 1.NN trace\\x00\"", b.Len(), n, head)
	}

	// Cancelled mid-trace: the call ends at once, the agent finishes its
	// 5 s alone and then serves the next request.
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	if _, err := c.Trace(ctx, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Trace: %v, want context.Canceled", err)
	}
	if _, err := c.Version(t.Context()); err != nil {
		t.Fatalf("agent unusable after a cancelled trace: %v", err)
	}
}

func TestRealAgentCPUProfile(t *testing.T) {
	if testing.Short() {
		t.Skipf("the gops agent's CPU profile always takes %v", gops.CPUProfileDuration)
	}
	t.Parallel()
	_, addr := startTestApp(t)
	c := &gops.Client{Addr: addr, Timeout: 30 * time.Second}
	var b bytes.Buffer
	start := time.Now()
	n, err := c.CPUProfile(t.Context(), &b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CPU profile: %d bytes in %v", n, time.Since(start).Round(time.Millisecond))
	p, err := profile.Parse(&b)
	if err != nil {
		t.Fatalf("CPU profile does not parse: %v", err)
	}
	if len(p.SampleType) != 2 || p.SampleType[1].Type != "cpu" {
		t.Fatalf("CPU profile sample types %v", p.SampleType)
	}
	if d := time.Duration(p.DurationNanos); d < gops.CPUProfileDuration {
		t.Fatalf("CPU profile lasted %v, want %v", d, gops.CPUProfileDuration)
	}
}
