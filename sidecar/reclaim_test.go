package sidecar

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/triage-sh/triage/internal/auth"
)

// fakeHeap stands for the runtime: allocations are set by the test and
// releases are counted.
type fakeHeap struct {
	allocated atomic.Uint64
	releases  atomic.Int32
	mu        sync.Mutex
	activeAt  []int // r.active seen by each release (through the reclaimer)
}

func (h *fakeHeap) alloc(n uint64) { h.allocated.Add(n) }

// newTestReclaimer returns a reclaimer over h with a short quiet time.
func newTestReclaimer(h *fakeHeap, quiet, minGap time.Duration, minAlloc uint64) *reclaimer {
	var r *reclaimer
	r = newReclaimerWith(quiet, minGap, minAlloc, func() {
		h.releases.Add(1)
		h.mu.Lock()
		h.activeAt = append(h.activeAt, r.activeCalls())
		h.mu.Unlock()
	}, h.allocated.Load, time.Now, nil)
	return r
}

// activeCalls is r.active under its lock.
func (r *reclaimer) activeCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

// waitReleases waits until h saw want releases, or fails after 5s.
func waitReleases(t *testing.T, h *fakeHeap, want int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.releases.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d releases after 5s, want %d", h.releases.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// oneCall runs one call through r, allocating n bytes meanwhile.
func oneCall(r *reclaimer, h *fakeHeap, n uint64) {
	r.begin()
	h.alloc(n)
	r.end()
}

func TestReclaimerReleasesOnlyAfterABusyPeriod(t *testing.T) {
	const quiet = 20 * time.Millisecond
	// settle is long enough for a timer of quiet to have fired even on a
	// loaded machine; a release that should not happen would have by then.
	const settle = 15 * quiet
	cases := []struct {
		name string
		// run drives the reclaimer; the release count is checked after.
		run  func(r *reclaimer, h *fakeHeap)
		want int32
	}{
		{"no call since start: startup garbage is left alone", func(r *reclaimer, h *fakeHeap) { h.alloc(64 << 20) }, 0},
		{"a call allocating enough", func(r *reclaimer, h *fakeHeap) { oneCall(r, h, 2<<20) }, 1},
		{"calls allocating too little", func(r *reclaimer, h *fakeHeap) {
			for range 10 {
				oneCall(r, h, 1<<10)
			}
		}, 0},
		{"many calls, one release once they stop", func(r *reclaimer, h *fakeHeap) {
			for range 100 {
				oneCall(r, h, 64<<10)
			}
		}, 1},
		{"a call still running", func(r *reclaimer, h *fakeHeap) {
			r.begin() // a long stream
			oneCall(r, h, 8<<20)
		}, 0},
		{"the quiet timer fires while a call runs", func(r *reclaimer, h *fakeHeap) {
			r.begin()
			h.alloc(8 << 20)
			r.fire() // as the timer of an earlier call would
		}, 0},
		{"allocations before the reclaimer do not count", func(r *reclaimer, h *fakeHeap) { oneCall(r, h, 1<<10) }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHeap{}
			h.alloc(100 << 20) // the process allocated before the server started
			r := newTestReclaimer(h, quiet, time.Hour, 1<<20)
			defer r.close()
			tc.run(r, h)
			if tc.want > 0 {
				waitReleases(t, h, tc.want)
			}
			time.Sleep(settle)
			if got := h.releases.Load(); got != tc.want {
				t.Fatalf("%d releases, want %d", got, tc.want)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, a := range h.activeAt {
				if a != 0 {
					t.Errorf("released with %d calls running", a)
				}
			}
		})
	}
}

func TestReclaimerWaitsForTheGapBetweenReleases(t *testing.T) {
	const quiet, gap = 10 * time.Millisecond, 400 * time.Millisecond
	h := &fakeHeap{}
	r := newTestReclaimer(h, quiet, gap, 1<<20)
	defer r.close()
	oneCall(r, h, 2<<20)
	waitReleases(t, h, 1)
	first := time.Now()
	// A second busy period right after: its release waits for the gap,
	// but still comes without another call.
	oneCall(r, h, 2<<20)
	waitReleases(t, h, 2)
	if since := time.Since(first); since < gap-50*time.Millisecond {
		t.Fatalf("second release %v after the first, want at least the gap %v", since, gap)
	}
	if got := h.releases.Load(); got != 2 {
		t.Fatalf("%d releases, want 2", got)
	}
}

func TestReclaimerClosedAndDisabled(t *testing.T) {
	h := &fakeHeap{}
	r := newTestReclaimer(h, 10*time.Millisecond, time.Hour, 1<<20)
	oneCall(r, h, 2<<20)
	r.close()
	oneCall(r, h, 2<<20) // after close: harmless, and no release
	time.Sleep(200 * time.Millisecond)
	if got := h.releases.Load(); got != 0 {
		t.Fatalf("%d releases after close, want 0", got)
	}

	if newReclaimer(0, nil) != nil || newReclaimer(-time.Second, nil) != nil {
		t.Fatal("a quiet time of 0 or less must turn the reclaimer off (nil)")
	}
	var off *reclaimer // the guard calls these on a nil reclaimer
	off.begin()
	off.end()
	off.close()
}

// TestGuardDrivesTheReclaimer checks the server's wiring: every call, health
// included, is seen by the reclaimer, which releases once they stop.
func TestGuardDrivesTheReclaimer(t *testing.T) {
	p := newPKI(t)
	st := startServer(t, p, func(o *Options) { o.ReleaseMemoryIdle = time.Hour })
	h := &fakeHeap{}
	g := st.srv.guard
	if g.reclaim == nil {
		t.Fatal("--release-memory-idle 1h made no reclaimer")
	}
	g.reclaim.close()
	g.reclaim = newTestReclaimer(h, 20*time.Millisecond, time.Hour, 1)
	t.Cleanup(g.reclaim.close)

	conn := dial(t, st.addr, p.clientTLS(t, idViewer, nil, auth.IssueOptions{}), "")
	ctx := testCtx(t)
	for range 3 {
		h.alloc(1)
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	waitReleases(t, h, 1)
	if a := g.reclaim.activeCalls(); a != 0 {
		t.Fatalf("%d calls still counted as running after they returned", a)
	}

	// Turned off, the server has none, and calls still work.
	off := startServer(t, p, func(o *Options) { o.ReleaseMemoryIdle = 0 })
	if off.srv.guard.reclaim != nil {
		t.Fatal("--release-memory-idle 0 still made a reclaimer")
	}
	conn = dial(t, off.addr, p.clientTLS(t, idViewer, nil, auth.IssueOptions{}), "")
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
}
