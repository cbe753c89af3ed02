package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triage-sh/triage/cmd/triage/internal/render"
)

// progressEvery is how often the live progress line is redrawn.
const progressEvery = 250 * time.Millisecond

// progress draws a live line on a terminal while an artifact streams in:
// elapsed of the requested duration and bytes received, redrawn in place
// with \r. Off a terminal it draws nothing until Done.
type progress struct {
	w     io.Writer
	live  bool
	label string
	total time.Duration
	start time.Time
	bytes atomic.Int64

	// lineFn, when set, draws the line instead of line.
	lineFn func(*progress) string

	stopOnce sync.Once
	stop     chan struct{}
	stopped  chan struct{}
}

// startProgress starts drawing (on a terminal) the progress of label,
// expected to take total (0 when unknown).
func startProgress(w io.Writer, live bool, label string, total time.Duration) *progress {
	return startProgressLine(w, live, total, label, nil)
}

// startProgressLine is startProgress with a line of the caller's own.
func startProgressLine(w io.Writer, live bool, total time.Duration, label string, lineFn func(*progress) string) *progress {
	p := &progress{w: w, live: live, label: label, total: total, start: time.Now(), lineFn: lineFn, stop: make(chan struct{}), stopped: make(chan struct{})}
	if !live {
		close(p.stopped)
		return p
	}
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		p.draw()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

// Set records the bytes received so far (a client.OnProgress callback).
func (p *progress) Set(n int64) { p.bytes.Store(n) }

// line is the progress text: "cpu profile: 4.2s / 10s, 1.2 MiB received".
func (p *progress) line() string {
	if p.lineFn != nil {
		return p.lineFn(p)
	}
	elapsed := time.Since(p.start).Truncate(100 * time.Millisecond)
	when := render.Duration(elapsed)
	if p.total > 0 {
		when += " / " + render.Duration(p.total)
	}
	return fmt.Sprintf("%s: %s, %s received", p.label, when, render.Bytes(uint64(p.bytes.Load())))
}

func (p *progress) draw() { fmt.Fprintf(p.w, "\r\x1b[K%s", p.line()) }

// Done stops drawing. When ok, it leaves a final line (on a terminal it
// replaces the live one); otherwise it clears the live line so the error
// that follows stands alone. Safe to call more than once.
func (p *progress) Done(ok bool) {
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.stopped
		switch {
		case p.live && ok:
			fmt.Fprintf(p.w, "\r\x1b[K%s\n", p.line())
		case p.live:
			fmt.Fprint(p.w, "\r\x1b[K")
		case ok:
			fmt.Fprintln(p.w, p.line())
		}
	})
}
