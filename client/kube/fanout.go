package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// FanOutOptions bound a [FanOut].
type FanOutOptions struct {
	// Concurrency bounds the pods holding a slot, i.e. in an active phase
	// (connecting, downloading); 0 means DefaultConcurrency.
	Concurrency int
	// PodTimeout bounds each pod from the moment it first gets a slot
	// (0: no bound). Waiting at the start barrier counts.
	PodTimeout time.Duration
	// Timeout bounds the whole fan-out, queueing included (0: no bound).
	Timeout time.Duration
	// Progress receives a progress line (nil: none).
	Progress io.Writer
	// ProgressTTY redraws one line with \r; otherwise a line is written
	// about every 10% of the pods.
	ProgressTTY bool
	// AlignStart makes [Slot.WaitStart] wait until every pod has connected
	// or failed, so timed collections cover the same window.
	AlignStart bool
}

// Result is one pod's outcome.
type Result[T any] struct {
	Pod   Pod
	Value T
	// Err is fn's error; for a skipped pod a *SkipError; after a timeout it
	// matches context.DeadlineExceeded.
	Err error
	// Duration is the time from the pod's first slot to fn's return.
	Duration time.Duration
}

// SkipError is the error of a pod that was not contacted.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// ErrSlotClosed is returned by Reacquire after fn has returned.
var ErrSlotClosed = errors.New("the fan-out slot was used after its function returned")

// Slot is a pod's share of the concurrency limit. fn starts holding it;
// Release gives it back during idle phases (the sidecar sampling) and
// Reacquire takes one again (to download). Both are idempotent and safe for
// concurrent use, and FanOut releases the slot when fn returns, whatever
// happened, so slots cannot leak.
type Slot struct {
	sem     chan struct{}
	barrier *barrier

	mu      sync.Mutex
	held    bool
	closed  bool
	arrived bool
}

// Release gives the slot back; it does nothing if the slot is not held.
func (s *Slot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		<-s.sem
		s.held = false
	}
}

// Reacquire waits for a slot unless one is held, or until ctx is done.
func (s *Slot) Reacquire(ctx context.Context) error {
	s.mu.Lock()
	held, closed := s.held, s.closed
	s.mu.Unlock()
	if closed {
		return ErrSlotClosed
	}
	if held {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held || s.closed || ctx.Err() != nil { // acquired concurrently, or too late
		<-s.sem
		switch {
		case s.closed:
			return ErrSlotClosed
		case s.held:
			return nil
		}
		return context.Cause(ctx)
	}
	s.held = true
	return nil
}

// WaitStart marks the end of the pod's setup: it releases the slot and,
// with AlignStart, waits until every pod has connected or failed, so the
// collections that follow start together. Call Reacquire before
// downloading. Without AlignStart it returns at once.
func (s *Slot) WaitStart(ctx context.Context) error {
	s.Release()
	s.arrive()
	if s.barrier == nil {
		return nil
	}
	select {
	case <-s.barrier.open:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// arrive counts the pod at the start barrier once.
func (s *Slot) arrive() {
	s.mu.Lock()
	first := !s.arrived
	s.arrived = true
	s.mu.Unlock()
	if first && s.barrier != nil {
		s.barrier.arrive()
	}
}

// close releases the slot for good.
func (s *Slot) close() {
	s.Release()
	s.arrive()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// barrier opens when every pod has arrived.
type barrier struct {
	mu      sync.Mutex
	pending int
	open    chan struct{}
}

func newBarrier(n int) *barrier {
	b := &barrier{pending: n, open: make(chan struct{})}
	if n == 0 {
		close(b.open)
	}
	return b
}

func (b *barrier) arrive() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending--
	if b.pending == 0 {
		close(b.open)
	}
}

// FanOut runs fn on every pod not marked Skip and returns one result per
// pod, in the order of pods. At most Concurrency fns hold a slot at once;
// fn may give its slot back while it waits on the sidecar (see Slot). Each
// fn gets a context bounded by PodTimeout and Timeout and must return when
// it is done; FanOut waits for every fn, so the results are complete and
// no goroutine outlives it. Skipped pods get a *SkipError.
func FanOut[T any](ctx context.Context, pods []Pod, opts FanOutOptions, fn func(ctx context.Context, p Pod, s *Slot) (T, error)) []Result[T] {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, opts.Timeout, fmt.Errorf("%w: the fleet timeout of %s (--fleet-timeout) passed", context.DeadlineExceeded, opts.Timeout))
		defer cancel()
	}
	prog := newProgress(opts, len(pods))
	results := make([]Result[T], len(pods))
	runnable := 0
	for i, p := range pods {
		results[i].Pod = p
		if p.Skip != "" {
			results[i].Err = &SkipError{Reason: p.Skip}
			prog.done(true)
		} else {
			runnable++
		}
	}
	var bar *barrier
	if opts.AlignStart {
		bar = newBarrier(runnable)
	}
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	for i := range results {
		if results[i].Err != nil {
			continue
		}
		wg.Go(func() {
			s := &Slot{sem: sem, barrier: bar}
			results[i] = runOne(ctx, results[i].Pod, opts.PodTimeout, s, fn)
			prog.done(results[i].Err != nil)
		})
	}
	wg.Wait()
	prog.finish()
	return results
}

// runOne waits for a first slot, then runs fn under the pod's deadline.
func runOne[T any](ctx context.Context, p Pod, podTimeout time.Duration, s *Slot, fn func(context.Context, Pod, *Slot) (T, error)) (r Result[T]) {
	r.Pod = p
	defer s.close()
	if err := s.Reacquire(ctx); err != nil {
		r.Err = fmt.Errorf("not started: %w", err)
		return r
	}
	start := time.Now()
	podCtx := ctx
	if podTimeout > 0 {
		var cancel context.CancelFunc
		podCtx, cancel = context.WithTimeoutCause(ctx, podTimeout, fmt.Errorf("%w: the pod timeout of %s (--pod-timeout) passed", context.DeadlineExceeded, podTimeout))
		defer cancel()
	}
	r.Value, r.Err = fn(podCtx, p, s)
	r.Duration = time.Since(start)
	if r.Err != nil && podCtx.Err() != nil {
		// Say why fn's context ended: fn's error (often a gRPC status)
		// does not.
		switch cause := context.Cause(podCtx); {
		case r.Err == podCtx.Err():
			r.Err = cause
		case !errors.Is(r.Err, cause):
			r.Err = fmt.Errorf("%w: %w", cause, r.Err)
		}
	}
	return r
}

// progress draws the fan-out's progress.
type progress struct {
	w        io.Writer
	tty      bool
	total    int
	start    time.Time
	stopTick chan struct{}
	ticked   sync.WaitGroup

	mu         sync.Mutex
	finished   int
	failed     int
	lastDecile int
}

func newProgress(opts FanOutOptions, total int) *progress {
	p := &progress{w: opts.Progress, tty: opts.ProgressTTY, total: total, start: time.Now()}
	if p.w != nil && p.tty && total > 0 {
		p.stopTick = make(chan struct{})
		p.ticked.Go(func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					p.mu.Lock()
					p.draw()
					p.mu.Unlock()
				case <-p.stopTick:
					return
				}
			}
		})
	}
	return p
}

// done counts a pod.
func (p *progress) done(failed bool) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finished++
	if failed {
		p.failed++
	}
	if p.tty {
		p.draw()
		return
	}
	if d := p.finished * 10 / p.total; d > p.lastDecile {
		p.lastDecile = d
		fmt.Fprintln(p.w, p.line())
	}
}

// finish ends the progress line.
func (p *progress) finish() {
	if p.w == nil || p.total == 0 {
		return
	}
	if p.stopTick != nil {
		close(p.stopTick)
		p.ticked.Wait()
	}
	if p.tty {
		p.mu.Lock()
		p.draw()
		p.mu.Unlock()
		fmt.Fprintln(p.w)
	}
}

// draw redraws the TTY line; p.mu is held.
func (p *progress) draw() { fmt.Fprint(p.w, "\r"+p.line()) }

// line is e.g. "[=====>    ] 37/100 pods, 2 failed, 4.1s"; p.mu is held.
func (p *progress) line() string {
	return fmt.Sprintf("%s %d/%d pods, %d failed, %.1fs", progressBar(p.finished, p.total, 20), p.finished, p.total, p.failed, time.Since(p.start).Seconds())
}

// progressBar draws done/total in width cells.
func progressBar(done, total, width int) string {
	filled := width
	if total > 0 {
		filled = done * width / total
	}
	var b strings.Builder
	b.WriteByte('[')
	switch {
	case filled >= width:
		b.WriteString(strings.Repeat("=", width))
	case filled == 0:
		b.WriteString(strings.Repeat(" ", width))
	default:
		b.WriteString(strings.Repeat("=", filled-1))
		b.WriteByte('>')
		b.WriteString(strings.Repeat(" ", width-filled))
	}
	b.WriteByte(']')
	return b.String()
}
