package gops_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triage-sh/triage/internal/gops"
)

// fakeAgent serves each connection with handle, given the first byte the
// client sent. Connections stay open until handle returns or the test ends,
// like a gops agent that never closes a failed request.
func fakeAgent(t *testing.T, handle func(conn net.Conn, sig byte)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() {
				var sig [1]byte
				if _, err := io.ReadFull(conn, sig[:]); err != nil {
					return
				}
				handle(conn, sig[0])
				select {
				case <-done:
				default:
					conn.Close()
				}
			})
		}
	})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return addr(ln)
}

func addr(ln net.Listener) string { return ln.Addr().String() }

// hang blocks until the connection is closed by either side.
func hang(conn net.Conn, _ byte) { _, _ = io.Copy(io.Discard, conn) }

func TestMaxBytes(t *testing.T) {
	reply := bytes.Repeat([]byte("x"), 1000)
	a := fakeAgent(t, func(conn net.Conn, _ byte) { _, _ = conn.Write(reply) })
	for _, tc := range []struct {
		max     int64
		wantN   int64
		wantErr error
	}{
		{0, 1000, nil},
		{1000, 1000, nil},
		{999, 999, gops.ErrTooLarge},
		{1, 1, gops.ErrTooLarge},
	} {
		c := &gops.Client{Addr: a, MaxBytes: tc.max}
		var b bytes.Buffer
		n, err := c.HeapProfile(t.Context(), &b)
		if !errors.Is(err, tc.wantErr) || n != tc.wantN || int64(b.Len()) != tc.wantN {
			t.Errorf("MaxBytes %d: %d bytes (wrote %d), %v; want %d, %v", tc.max, n, b.Len(), err, tc.wantN, tc.wantErr)
		}
	}
	// Text replies are capped too.
	c := &gops.Client{Addr: a, MaxBytes: 10}
	if _, err := c.MemStats(t.Context()); !errors.Is(err, gops.ErrTooLarge) {
		t.Errorf("MemStats over MaxBytes: %v, want ErrTooLarge", err)
	}
}

// cancelOnWrite cancels a context on its first write.
type cancelOnWrite struct {
	bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.cancel()
	return w.Buffer.Write(p)
}

func TestCancelMidReply(t *testing.T) {
	a := fakeAgent(t, func(conn net.Conn, sig byte) {
		_, _ = conn.Write([]byte("goroutine 1 [running]:\n"))
		hang(conn, sig)
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := &cancelOnWrite{cancel: cancel}
	c := &gops.Client{Addr: a, Timeout: time.Hour}
	n, err := c.Stack(ctx, w)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stack cancelled mid-reply: %v, want context.Canceled", err)
	}
	if n != int64(w.Len()) || n == 0 {
		t.Fatalf("Stack cancelled mid-reply: reported %d bytes, wrote %d", n, w.Len())
	}
}

func TestCancelledBeforeCall(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c := &gops.Client{Addr: "127.0.0.1:1"}
	if _, err := c.Version(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Version with a cancelled context: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	a := fakeAgent(t, hang)
	c := &gops.Client{Addr: a, Timeout: 100 * time.Millisecond}
	_, err := c.Version(t.Context())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "one request at a time") {
		t.Fatalf("Version from a silent agent: %v, want DeadlineExceeded with an explanation", err)
	}
}

func TestDeadlineShorterThanProfile(t *testing.T) {
	a := fakeAgent(t, func(net.Conn, byte) { t.Error("the agent was asked for a profile that cannot finish") })
	ctx, cancel := context.WithTimeout(t.Context(), gops.CPUProfileDuration/2)
	defer cancel()
	c := &gops.Client{Addr: a}
	if _, err := c.CPUProfile(ctx, io.Discard); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CPUProfile with a 15 s deadline: %v, want DeadlineExceeded", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), gops.TraceDuration/2)
	defer cancel()
	if _, err := c.Trace(ctx, io.Discard); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Trace with a short deadline: %v, want DeadlineExceeded", err)
	}
}

func TestNoAgent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := addr(ln)
	ln.Close()
	c := &gops.Client{Addr: a}
	_, err = c.Stack(t.Context(), io.Discard)
	if !errors.Is(err, gops.ErrNoAgent) {
		t.Fatalf("Stack with no agent: %v, want ErrNoAgent", err)
	}
	for _, want := range []string{a, "agent.Listen", "triage agent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := (&gops.Client{}).Version(t.Context()); err == nil {
		t.Error("Version with no address succeeded")
	}
}

func TestBadReplies(t *testing.T) {
	replies := map[byte]string{
		0x2: "not ok",
		0x3: "",
		0x4: "",
		0x7: "goroutines: 3\n",
	}
	a := fakeAgent(t, func(conn net.Conn, sig byte) { _, _ = io.WriteString(conn, replies[sig]) })
	c := &gops.Client{Addr: a}
	ctx := t.Context()
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, gops.ErrBadReply) {
			t.Errorf("%s: %v, want ErrBadReply", name, err)
		}
	}
	check("GC", c.GC(ctx))
	_, err := c.MemStats(ctx)
	check("MemStats", err)
	_, err = c.Version(ctx)
	check("Version", err)
	_, err = c.Stats(ctx)
	check("Stats", err)
}

// failingWriter fails every write.
type failingWriter struct{}

var errDisk = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errDisk }

func TestWriterError(t *testing.T) {
	a := fakeAgent(t, func(conn net.Conn, sig byte) {
		_, _ = conn.Write([]byte("data"))
		hang(conn, sig)
	})
	c := &gops.Client{Addr: a, Timeout: time.Hour}
	if _, err := c.HeapProfile(t.Context(), failingWriter{}); !errors.Is(err, errDisk) {
		t.Fatalf("HeapProfile to a failing writer: %v, want %v", err, errDisk)
	}
}

func TestSetGCPercentWire(t *testing.T) {
	got := make(chan int64, 1)
	a := fakeAgent(t, func(conn net.Conn, sig byte) {
		if sig != 0x10 {
			t.Errorf("signal %#x, want 0x10", sig)
			return
		}
		v, err := binary.ReadVarint(byteReader{conn})
		if err != nil {
			t.Error(err)
			return
		}
		got <- v
		_, _ = io.WriteString(conn, "New GC percent set to -1. Previous value was 100.\n")
	})
	c := &gops.Client{Addr: a}
	prev, err := c.SetGCPercent(t.Context(), -1)
	if err != nil || prev != 100 {
		t.Fatalf("SetGCPercent(-1) = %d, %v; want 100", prev, err)
	}
	if v := <-got; v != -1 {
		t.Fatalf("agent read %d, want -1", v)
	}
}

// byteReader reads one byte at a time, so that nothing past the varint is consumed.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.r, p[:])
	return p[0], err
}
