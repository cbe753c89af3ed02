package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func testPods(n int) []Pod {
	pods := make([]Pod, n)
	for i := range pods {
		pods[i] = Pod{Namespace: testNS, Name: fmt.Sprintf("web-%03d", i), Node: fmt.Sprintf("node-%d", i%3), SidecarPort: 7070}
	}
	return pods
}

// gauge tracks a current count and its maximum.
type gauge struct{ cur, max atomic.Int64 }

func (g *gauge) inc() {
	n := g.cur.Add(1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (g *gauge) dec() { g.cur.Add(-1) }

func TestFanOutBoundsConcurrency(t *testing.T) {
	for _, limit := range []int{1, 3, 10} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			var active gauge
			pods := testPods(40)
			res := FanOut(context.Background(), pods, FanOutOptions{Concurrency: limit}, func(ctx context.Context, p Pod, s *Slot) (string, error) {
				active.inc()
				defer active.dec()
				time.Sleep(2 * time.Millisecond)
				return p.Name, nil
			})
			if m := active.max.Load(); m > int64(limit) || (m < int64(limit) && limit > 1 && m < 2) {
				t.Errorf("max active = %d, want at most %d (and some parallelism)", m, limit)
			}
			for i, r := range res {
				if r.Err != nil || r.Value != pods[i].Name || r.Pod != pods[i] {
					t.Errorf("result %d = %+v, want %s in order", i, r, pods[i].Name)
				}
			}
		})
	}
}

// TestFanOutReleaseLetsPodsSampleTogether runs 100 pods with 10 slots;
// each samples for up to 200 ms with its slot released. All 100 must be
// sampling at once, while the active phases never exceed 10.
func TestFanOutReleaseLetsPodsSampleTogether(t *testing.T) {
	const pods, limit = 100, 10
	var active, sampling gauge
	var sampled atomic.Int64
	allSampling := make(chan struct{})
	var once sync.Once
	res := FanOut(context.Background(), testPods(pods), FanOutOptions{Concurrency: limit}, func(ctx context.Context, p Pod, s *Slot) (int, error) {
		active.inc() // connecting, holding the slot
		active.dec()
		s.Release()
		s.Release() // idempotent

		sampling.inc()
		if sampling.cur.Load() == pods {
			once.Do(func() { close(allSampling) })
		}
		select { // the sidecar samples; no slot held
		case <-allSampling:
		case <-time.After(5 * time.Second):
		}
		sampling.dec()
		sampled.Add(1)

		if err := s.Reacquire(ctx); err != nil {
			return 0, err
		}
		if err := s.Reacquire(ctx); err != nil { // idempotent
			return 0, err
		}
		active.inc() // downloading
		defer active.dec()
		time.Sleep(time.Millisecond)
		return 1, nil
	})
	if m := sampling.max.Load(); m != pods {
		t.Errorf("at most %d pods sampled at once, want all %d: slots were not released", m, pods)
	}
	if m := active.max.Load(); m > limit {
		t.Errorf("%d pods were active at once, want at most %d", m, limit)
	}
	for _, r := range res {
		if r.Err != nil || r.Value != 1 {
			t.Errorf("%s: %v", r.Pod.Name, r.Err)
		}
	}
}

func TestSlotIdempotentAndClosed(t *testing.T) {
	sem := make(chan struct{}, 2)
	s := &Slot{sem: sem}
	ctx := context.Background()
	steps := []struct {
		name    string
		do      func() error
		wantLen int
	}{
		{"reacquire", func() error { return s.Reacquire(ctx) }, 1},
		{"reacquire again", func() error { return s.Reacquire(ctx) }, 1},
		{"release", func() error { s.Release(); return nil }, 0},
		{"release again", func() error { s.Release(); return nil }, 0},
		{"reacquire after release", func() error { return s.Reacquire(ctx) }, 1},
		{"close while held", func() error { s.close(); return nil }, 0},
		{"reacquire after close", func() error {
			if err := s.Reacquire(ctx); !errors.Is(err, ErrSlotClosed) {
				return fmt.Errorf("Reacquire after close = %v, want ErrSlotClosed", err)
			}
			return nil
		}, 0},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if len(sem) != st.wantLen {
			t.Fatalf("after %s, %d slots taken, want %d", st.name, len(sem), st.wantLen)
		}
	}

	// A Reacquire blocked on a full semaphore ends with its context.
	full := make(chan struct{}, 1)
	full <- struct{}{}
	blocked := &Slot{sem: full}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := blocked.Reacquire(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked Reacquire = %v, want DeadlineExceeded", err)
	}
	if len(full) != 1 {
		t.Fatalf("a failed Reacquire took a slot")
	}
}

func TestFanOutSlotReturnedOnExit(t *testing.T) {
	// fns that exit holding their slot, after a Reacquire, or with an error
	// must not starve later pods: with one slot, all 30 must run.
	var ran atomic.Int64
	res := FanOut(context.Background(), testPods(30), FanOutOptions{Concurrency: 1, Timeout: 10 * time.Second}, func(ctx context.Context, p Pod, s *Slot) (int, error) {
		ran.Add(1)
		switch ran.Load() % 3 {
		case 0:
			s.Release()
			if err := s.Reacquire(ctx); err != nil {
				return 0, err
			}
		case 1:
			return 0, errors.New("boom")
		}
		return 1, nil
	})
	if ran.Load() != 30 {
		t.Fatalf("%d of 30 fns ran", ran.Load())
	}
	for _, r := range res {
		if r.Err != nil && r.Err.Error() != "boom" {
			t.Errorf("%s: %v", r.Pod.Name, r.Err)
		}
	}
}

func TestFanOutPodTimeout(t *testing.T) {
	pods := testPods(6)
	slow := map[string]bool{pods[1].Name: true, pods[4].Name: true}
	res := FanOut(context.Background(), pods, FanOutOptions{Concurrency: 3, PodTimeout: 50 * time.Millisecond}, func(ctx context.Context, p Pod, s *Slot) (string, error) {
		if slow[p.Name] {
			<-ctx.Done()
			// A gRPC status hides the context error, as a real call's would.
			return "", status.Error(codes.DeadlineExceeded, "context deadline exceeded")
		}
		return p.Name, nil
	})
	for _, r := range res {
		if slow[r.Pod.Name] {
			if !errors.Is(r.Err, context.DeadlineExceeded) || !strings.Contains(r.Err.Error(), "--pod-timeout") {
				t.Errorf("%s: err = %v, want DeadlineExceeded naming --pod-timeout", r.Pod.Name, r.Err)
			}
			if r.Duration < 50*time.Millisecond {
				t.Errorf("%s: duration %s, shorter than the pod timeout", r.Pod.Name, r.Duration)
			}
			continue
		}
		if r.Err != nil || r.Value != r.Pod.Name {
			t.Errorf("%s: %q, %v; want its value (only the slow pods time out)", r.Pod.Name, r.Value, r.Err)
		}
	}
}

func TestFanOutOverallTimeoutKeepsPartialResults(t *testing.T) {
	pods := testPods(6)
	fast := map[string]bool{pods[0].Name: true, pods[3].Name: true}
	res := FanOut(context.Background(), pods, FanOutOptions{Concurrency: len(pods), Timeout: 100 * time.Millisecond}, func(ctx context.Context, p Pod, s *Slot) (string, error) {
		if fast[p.Name] {
			return p.Name, nil
		}
		<-ctx.Done()
		return "", ctx.Err()
	})
	for _, r := range res {
		if fast[r.Pod.Name] {
			if r.Err != nil || r.Value != r.Pod.Name {
				t.Errorf("%s: %q, %v; want its value", r.Pod.Name, r.Value, r.Err)
			}
			continue
		}
		if !errors.Is(r.Err, context.DeadlineExceeded) || !strings.Contains(r.Err.Error(), "--fleet-timeout") {
			t.Errorf("%s: err = %v, want DeadlineExceeded naming --fleet-timeout", r.Pod.Name, r.Err)
		}
	}
}

func TestFanOutOverallTimeoutWhileQueued(t *testing.T) {
	// One slot, held until the deadline: one pod ran, the rest never started.
	var ran atomic.Int64
	res := FanOut(context.Background(), testPods(5), FanOutOptions{Concurrency: 1, Timeout: 50 * time.Millisecond}, func(ctx context.Context, p Pod, s *Slot) (int, error) {
		ran.Add(1)
		<-ctx.Done()
		return 0, status.Error(codes.DeadlineExceeded, "deadline")
	})
	notStarted := 0
	for _, r := range res {
		if !errors.Is(r.Err, context.DeadlineExceeded) || !strings.Contains(r.Err.Error(), "--fleet-timeout") {
			t.Errorf("%s: err = %v, want DeadlineExceeded naming --fleet-timeout", r.Pod.Name, r.Err)
		}
		if strings.HasPrefix(r.Err.Error(), "not started") {
			notStarted++
		}
	}
	if ran.Load() != 1 || notStarted != 4 {
		t.Errorf("%d fns ran and %d pods were reported not started; want 1 and 4", ran.Load(), notStarted)
	}
}

func TestFanOutSkipsPods(t *testing.T) {
	pods := testPods(4)
	pods[2].Skip = "pod is Pending, not Running"
	var called sync.Map
	res := FanOut(context.Background(), pods, FanOutOptions{}, func(ctx context.Context, p Pod, s *Slot) (bool, error) {
		called.Store(p.Name, true)
		return true, nil
	})
	var se *SkipError
	if !errors.As(res[2].Err, &se) || se.Reason != pods[2].Skip {
		t.Errorf("skipped pod err = %v, want a SkipError with its reason", res[2].Err)
	}
	if _, ok := called.Load(pods[2].Name); ok {
		t.Errorf("fn ran on a skipped pod")
	}
	for _, i := range []int{0, 1, 3} {
		if res[i].Err != nil || !res[i].Value {
			t.Errorf("pod %d: %+v", i, res[i])
		}
	}
}

func TestFanOutAlignStart(t *testing.T) {
	const n = 30
	pods := testPods(n)
	pods[7].Skip = "terminating" // skipped pods are not waited for
	var connected atomic.Int64   // pods past setup, connected or failed
	var early atomic.Int64       // pods that started before all had connected
	res := FanOut(context.Background(), pods, FanOutOptions{Concurrency: 3, AlignStart: true, Timeout: 10 * time.Second}, func(ctx context.Context, p Pod, s *Slot) (int, error) {
		time.Sleep(time.Millisecond) // connecting
		connected.Add(1)
		if strings.HasSuffix(p.Name, "5") {
			return 0, errors.New("connection refused")
		}
		if err := s.WaitStart(ctx); err != nil {
			return 0, err
		}
		if connected.Load() != n-1 {
			early.Add(1)
		}
		return 1, nil
	})
	if e := early.Load(); e != 0 {
		t.Errorf("%d pods started before every pod had connected", e)
	}
	ok := 0
	for _, r := range res {
		if r.Err == nil {
			ok++
		}
	}
	if ok != n-1-3 { // 29 runnable, 3 names end in 5
		t.Errorf("%d pods succeeded, want %d", ok, n-4)
	}
}

func TestFanOutWaitStartWithoutAlign(t *testing.T) {
	// Without AlignStart, WaitStart returns at once and gives the slot back.
	res := FanOut(context.Background(), testPods(5), FanOutOptions{Concurrency: 1}, func(ctx context.Context, p Pod, s *Slot) (int, error) {
		if err := s.WaitStart(ctx); err != nil {
			return 0, err
		}
		return len(s.sem), nil
	})
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Pod.Name, r.Err)
		}
	}
}

var progressLine = regexp.MustCompile(`^\[[=> ]{20}\] (\d+)/(\d+) pods, (\d+) failed, \d+\.\ds$`)

func TestFanOutProgressNonTTY(t *testing.T) {
	tests := []struct {
		pods, failEvery int
		wantLines       int
	}{
		{20, 4, 10},
		{100, 10, 10},
		{5, 0, 5},
		{1, 0, 1},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.pods), func(t *testing.T) {
			var buf bytes.Buffer
			FanOut(context.Background(), testPods(tt.pods), FanOutOptions{Progress: &buf}, func(ctx context.Context, p Pod, s *Slot) (int, error) {
				i, _ := strconv.Atoi(strings.TrimPrefix(p.Name, "web-"))
				if tt.failEvery > 0 && i%tt.failEvery == 0 {
					return 0, errors.New("boom")
				}
				return 0, nil
			})
			out := buf.String()
			if strings.Contains(out, "\r") {
				t.Errorf("non-TTY progress redraws with \\r: %q", out)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != tt.wantLines {
				t.Fatalf("%d progress lines, want %d:\n%s", len(lines), tt.wantLines, out)
			}
			prev := 0
			for _, l := range lines {
				m := progressLine.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("progress line %q does not match %s", l, progressLine)
				}
				done, _ := strconv.Atoi(m[1])
				if done <= prev || m[2] != strconv.Itoa(tt.pods) {
					t.Errorf("line %q: count not increasing or wrong total", l)
				}
				prev = done
			}
			wantFailed := 0
			if tt.failEvery > 0 {
				wantFailed = (tt.pods + tt.failEvery - 1) / tt.failEvery
			}
			want := fmt.Sprintf("[====================] %d/%d pods, %d failed, ", tt.pods, tt.pods, wantFailed)
			if !strings.HasPrefix(lines[len(lines)-1], want) {
				t.Errorf("last line %q, want prefix %q", lines[len(lines)-1], want)
			}
		})
	}
}

func TestFanOutProgressTTY(t *testing.T) {
	var buf bytes.Buffer
	FanOut(context.Background(), testPods(3), FanOutOptions{Progress: &buf, ProgressTTY: true}, func(ctx context.Context, p Pod, s *Slot) (int, error) {
		return 0, nil
	})
	out := buf.String()
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("TTY progress %q: want one line ended once", out)
	}
	draws := strings.Split(strings.TrimSuffix(out, "\n"), "\r")[1:]
	if len(draws) < 3 {
		t.Fatalf("TTY progress %q: want a redraw per pod", out)
	}
	for _, d := range draws {
		if !progressLine.MatchString(d) {
			t.Errorf("redraw %q does not match %s", d, progressLine)
		}
	}
	if last := draws[len(draws)-1]; !strings.HasPrefix(last, "[====================] 3/3 pods, 0 failed") {
		t.Errorf("last redraw %q", last)
	}
}

func TestProgressBar(t *testing.T) {
	tests := []struct {
		done, total int
		want        string
	}{
		{0, 10, "[          ]"},
		{1, 10, "[>         ]"},
		{5, 10, "[====>     ]"},
		{9, 10, "[========> ]"},
		{10, 10, "[==========]"},
		{37, 100, "[==>       ]"},
		{0, 0, "[==========]"},
	}
	for _, tt := range tests {
		if got := progressBar(tt.done, tt.total, 10); got != tt.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", tt.done, tt.total, got, tt.want)
		}
	}
}

func TestErrorTable(t *testing.T) {
	ok := Result[int]{Pod: Pod{Namespace: "shop", Name: "web-1", Node: "n1"}, Value: 1}
	failed := Result[int]{Pod: Pod{Namespace: "shop", Name: "web-2", Node: "n2"}, Err: errors.New("port-forward to shop/web-2:\n\tlost the connection")}
	skipped := Result[int]{Pod: Pod{Namespace: "shop", Name: "web-3"}, Err: &SkipError{Reason: "pod is Pending, not Running"}}
	other := Result[int]{Pod: Pod{Namespace: "cart", Name: "api-0", Node: "n9"}, Err: status.Error(codes.PermissionDenied, "caller lacks profiler")}
	tests := []struct {
		name    string
		results []Result[int]
		want    string
		wantN   int
	}{
		{"none failed", []Result[int]{ok}, "", 0},
		{"one namespace", []Result[int]{ok, failed, skipped},
			"POD    NODE  ERROR\n" +
				"web-2  n2    port-forward to shop/web-2: lost the connection\n" +
				"web-3  -     skipped: pod is Pending, not Running\n", 2},
		{"namespaces", []Result[int]{failed, other},
			"POD         NODE  ERROR\n" +
				"shop/web-2  n2    port-forward to shop/web-2: lost the connection\n" +
				"cart/api-0  n9    PermissionDenied: caller lacks profiler\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			n, err := ErrorTable(&buf, tt.results)
			if err != nil || n != tt.wantN || buf.String() != tt.want {
				t.Errorf("ErrorTable = %d, %v:\n%s\nwant %d:\n%s", n, err, buf.String(), tt.wantN, tt.want)
			}
		})
	}
}
