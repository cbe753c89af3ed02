package gops

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// Defaults for a zero Client field.
const (
	// DefaultTimeout bounds a call when Client.Timeout is zero.
	DefaultTimeout = time.Minute
	// DefaultMaxBytes caps a reply when Client.MaxBytes is zero.
	DefaultMaxBytes = 512 << 20
	// maxTextReply caps the small text replies (version, stats, memstats,
	// gc), which are read into memory; gops's are under 2 KiB.
	maxTextReply = 1 << 20
)

// Client talks to one gops agent. The zero value needs only Addr. A Client
// has no state and may be used concurrently, but the agent serves one request
// at a time, so concurrent calls queue in the agent.
type Client struct {
	// Addr is the agent's host:port, e.g. from FindAddr or --gops-addr.
	Addr string
	// Timeout bounds each call from dial to the end of the reply, not
	// counting the fixed collection time of CPUProfile and Trace, which is
	// added to it. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxBytes caps the bytes read from one reply; a longer reply fails with
	// ErrTooLarge. Zero means DefaultMaxBytes.
	MaxBytes int64
}

// request is one exchange with the agent.
type request struct {
	op      string        // for errors: "stack", "cpu profile", ...
	payload []byte        // the signal byte and any argument
	runs    time.Duration // fixed time the agent spends collecting
}

// Stack writes the agent's goroutine dump to w: the text of pprof's goroutine
// profile at debug=2, the format of runtime.Stack(buf, true). It stops the
// app's world for as long as the dump takes (seconds at 100,000 goroutines),
// and pprof truncates it at 64 MiB.
func (c *Client) Stack(ctx context.Context, w io.Writer) (int64, error) {
	return c.stream(ctx, request{op: "stack", payload: []byte{sigStackTrace}}, w, c.maxBytes())
}

// HeapProfile writes the agent's heap profile to w, a gzipped profile.proto
// (pprof.WriteHeapProfile) that also holds the allocation samples
// (go tool pprof -sample_index=alloc_space).
func (c *Client) HeapProfile(ctx context.Context, w io.Writer) (int64, error) {
	return c.stream(ctx, request{op: "heap profile", payload: []byte{sigHeapProfile}}, w, c.maxBytes())
}

// CPUProfile writes a CPU profile of CPUProfileDuration (fixed by gops) to w,
// a gzipped profile.proto. If ctx expires before the profile can finish it
// fails at once without asking: an abandoned profile would still hold the
// agent for the full duration.
func (c *Client) CPUProfile(ctx context.Context, w io.Writer) (int64, error) {
	return c.stream(ctx, request{op: "cpu profile", payload: []byte{sigCPUProfile}, runs: CPUProfileDuration}, w, c.maxBytes())
}

// Trace writes an execution trace of TraceDuration (fixed by gops) to w, in
// the format go tool trace reads. Like CPUProfile, it fails at once if ctx
// would expire first.
func (c *Client) Trace(ctx context.Context, w io.Writer) (int64, error) {
	return c.stream(ctx, request{op: "trace", payload: []byte{sigTrace}, runs: TraceDuration}, w, c.maxBytes())
}

// Version returns the Go version the app was built with, e.g. "go1.26.8".
func (c *Client) Version(ctx context.Context) (string, error) {
	s, err := c.text(ctx, request{op: "version", payload: []byte{sigVersion}})
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(s)
	if !strings.HasPrefix(v, "go") && !strings.HasPrefix(v, "devel") {
		return "", fmt.Errorf("gops version at %s: %w: %q", c.Addr, ErrBadReply, truncate(s))
	}
	return v, nil
}

// MemStats returns the agent's runtime.MemStats summary as text, one
// "name: value" line per field (alloc, total-alloc, sys, heap-*, num-gc,
// gc-cpu-fraction, ...), sizes humanized by gops.
func (c *Client) MemStats(ctx context.Context) (string, error) {
	s, err := c.text(ctx, request{op: "memstats", payload: []byte{sigMemStats}})
	if err != nil {
		return "", err
	}
	if !strings.Contains(s, "alloc: ") {
		return "", fmt.Errorf("gops memstats at %s: %w: %q", c.Addr, ErrBadReply, truncate(s))
	}
	return s, nil
}

// Stats returns the agent's runtime counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	s, err := c.text(ctx, request{op: "stats", payload: []byte{sigStats}})
	if err != nil {
		return Stats{}, err
	}
	st, err := parseStats(s)
	if err != nil {
		return Stats{}, fmt.Errorf("gops stats at %s: %w", c.Addr, err)
	}
	return st, nil
}

// GC runs a garbage collection in the app and returns when it is done.
func (c *Client) GC(ctx context.Context) error {
	s, err := c.text(ctx, request{op: "gc", payload: []byte{sigGC}})
	if err != nil {
		return err
	}
	if s != "ok" {
		return fmt.Errorf("gops gc at %s: %w: %q", c.Addr, ErrBadReply, truncate(s))
	}
	return nil
}

// SetGCPercent sets the app's GOGC (debug.SetGCPercent; negative turns the
// collector off) and returns the previous value.
func (c *Client) SetGCPercent(ctx context.Context, percent int) (int, error) {
	p := binary.AppendVarint([]byte{sigSetGCPercent}, int64(percent))
	s, err := c.text(ctx, request{op: "set gc percent", payload: p})
	if err != nil {
		return 0, err
	}
	prev, err := parseSetGCPercent(s, percent)
	if err != nil {
		return 0, fmt.Errorf("gops set gc percent at %s: %w", c.Addr, err)
	}
	return prev, nil
}

func (c *Client) maxBytes() int64 {
	if c.MaxBytes > 0 {
		return c.MaxBytes
	}
	return DefaultMaxBytes
}

// text reads a small reply into memory.
func (c *Client) text(ctx context.Context, r request) (string, error) {
	var b bytes.Buffer
	if _, err := c.stream(ctx, r, &b, min(c.maxBytes(), maxTextReply)); err != nil {
		return "", err
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("gops %s at %s: %w: empty (an agent that does not know the request replies with nothing)", r.op, c.Addr, ErrBadReply)
	}
	return b.String(), nil
}

// stream sends r and copies the reply to w until the agent closes the
// connection, reading at most limit bytes.
func (c *Client) stream(parent context.Context, r request, w io.Writer, limit int64) (int64, error) {
	if c.Addr == "" {
		return 0, fmt.Errorf("gops %s: no agent address", r.op)
	}
	if err := parent.Err(); err != nil {
		return 0, fmt.Errorf("gops %s at %s: %w", r.op, c.Addr, err)
	}
	if dl, ok := parent.Deadline(); ok && r.runs > 0 && time.Until(dl) < r.runs {
		return 0, fmt.Errorf("gops %s at %s: the agent always runs it for %v but the call's deadline is in %v: %w",
			r.op, c.Addr, r.runs, time.Until(dl).Round(time.Millisecond), context.DeadlineExceeded)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout+r.runs)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return 0, fmt.Errorf("%w at %s: %s: %w", ErrNoAgent, c.Addr, hintNoAgent, err)
		}
		return 0, c.fail(parent, ctx, r, timeout, fmt.Errorf("dial: %w", err))
	}
	defer conn.Close()
	// Cancelling ctx (the caller's or the timeout) closes the connection,
	// which ends a blocked read or write at once.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if _, err := conn.Write(r.payload); err != nil {
		return 0, c.fail(parent, ctx, r, timeout, fmt.Errorf("send: %w", err))
	}

	cw := &countingWriter{w: w}
	_, err = io.Copy(cw, io.LimitReader(conn, limit))
	if cw.err != nil {
		return cw.n, fmt.Errorf("gops %s at %s: writing the reply: %w", r.op, c.Addr, cw.err)
	}
	if err == nil {
		// The cap is reached or the reply ended: one more byte tells which.
		var one [1]byte
		switch n, rerr := io.ReadFull(conn, one[:]); {
		case n > 0:
			return cw.n, fmt.Errorf("gops %s at %s: reply longer than %d bytes: %w", r.op, c.Addr, limit, ErrTooLarge)
		case rerr != io.EOF:
			err = rerr
		}
	}
	if err == nil && ctx.Err() != nil {
		// The reply ended, but cancellation may have raced with it; the
		// caller asked to stop, so say so rather than return a reply that may
		// have been cut short by the close.
		err = ctx.Err()
	}
	if err != nil {
		return cw.n, c.fail(parent, ctx, r, timeout, fmt.Errorf("read after %d bytes: %w", cw.n, err))
	}
	return cw.n, nil
}

// fail explains err: the caller's cancellation, the Client's timeout (with
// why a gops agent may not answer), or a network error.
func (c *Client) fail(parent, ctx context.Context, r request, timeout time.Duration, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("gops %s at %s: %w", r.op, c.Addr, perr)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("gops %s at %s: no complete reply within %v: the agent serves one request at a time "+
			"and leaves the connection open when a request fails (for example a CPU profile or trace while one "+
			"is already running): %w", r.op, c.Addr, timeout+r.runs, context.DeadlineExceeded)
	}
	return fmt.Errorf("gops %s at %s: %w", r.op, c.Addr, err)
}

// countingWriter counts the bytes written and keeps the first write error,
// so that a failing destination is told apart from a failing connection.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	if err != nil && cw.err == nil {
		cw.err = err
	}
	return n, err
}

// truncate shortens a reply quoted in an error.
func truncate(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
