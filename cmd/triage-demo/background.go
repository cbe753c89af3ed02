package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// startWorkers starts n workers that each do a little hashing every tick,
// so a goroutine dump shows a pool of identical stacks.
func (d *Demo) startWorkers(n int, tick time.Duration) {
	for i := range n {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			t := time.NewTicker(tick)
			defer t.Stop()
			sum := sha256.Sum256([]byte{byte(i)})
			for {
				select {
				case <-d.stop:
					return
				case <-t.C:
					for range 100 {
						sum = sha256.Sum256(sum[:])
					}
				}
			}
		}()
	}
}

// startSleeper starts one goroutine that sleeps in a loop (wait reason
// "sleep" in a goroutine dump).
func (d *Demo) startSleeper() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			select {
			case <-d.stop:
				return
			default:
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
}

// startBlocked starts one goroutine blocked on a channel nobody sends on
// (wait reason "chan receive", growing wait time): the shape of a leak.
func (d *Demo) startBlocked() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		<-d.block // closed only by Shutdown
	}()
}

// openTempFiles creates n temporary files and keeps them open.
func openTempFiles(n int) ([]*os.File, error) {
	files := make([]*os.File, 0, n)
	for i := range n {
		f, err := os.CreateTemp("", fmt.Sprintf("triage-demo-%d-*.tmp", i))
		if err != nil {
			for _, f := range files {
				f.Close()
				os.Remove(f.Name())
			}
			return nil, fmt.Errorf("open temporary file: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

// idleConn is an outbound TCP connection that sits idle, to a loopback
// listener of our own that accepts and holds it: `triage proc` shows two
// ESTABLISHED sockets and one more LISTEN.
type idleConn struct {
	listener net.Listener
	out, in  net.Conn
}

// dialIdle opens the peer listener, connects to it and accepts the
// connection (the kernel completes the handshake before Accept, so this
// does not block).
func dialIdle() (*idleConn, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the idle connection: %w", err)
	}
	out, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("dial the idle connection: %w", err)
	}
	in, err := l.Accept()
	if err != nil {
		out.Close()
		l.Close()
		return nil, fmt.Errorf("accept the idle connection: %w", err)
	}
	return &idleConn{listener: l, out: out, in: in}, nil
}

// Close closes both ends and the listener.
func (c *idleConn) Close() error {
	if err := errors.Join(c.out.Close(), c.in.Close(), c.listener.Close()); err != nil {
		return fmt.Errorf("close the idle connection: %w", err)
	}
	return nil
}
