package main

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// genStats is what a generator did in one run.
type genStats struct {
	sent     int64 // UDP: datagrams; TCP: payload bytes
	received int64 // what the sink (UDP) or the receiver (TCP) got
	skipped  int64 // UDP: datagrams the pacer gave up on when it fell behind
	errs     int64 // UDP: failed sendmmsg calls
	elapsed  time.Duration
}

func (g genStats) rate() float64 {
	if g.elapsed <= 0 {
		return 0
	}
	return float64(g.sent) / g.elapsed.Seconds()
}

// generator is loopback traffic to one port, run several times.
type generator interface {
	port() int
	// run sends until ctx is done, then waits for the receiving side to
	// catch up (at most settle).
	run(ctx context.Context, settle time.Duration) genStats
	close()
}

// udpGen sends fixed-size datagrams at a paced rate from a connected
// socket to a sink that reads and discards them, both with sendmmsg /
// recvmmsg in batches.
type udpGen struct {
	rate, payload, batch int
	sink, snd            *net.UDPConn
	recv                 atomic.Int64
	done                 chan struct{}
}

func newUDPGen(rate, payload int) (*udpGen, error) {
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = sink.SetReadBuffer(8 << 20)
	snd, err := net.DialUDP("udp4", nil, sink.LocalAddr().(*net.UDPAddr))
	if err != nil {
		sink.Close()
		return nil, err
	}
	_ = snd.SetWriteBuffer(4 << 20)
	g := &udpGen{rate: rate, payload: payload, batch: 32, sink: sink, snd: snd, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		pc := ipv4.NewPacketConn(sink)
		msgs := make([]ipv4.Message, 64)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 2048)}
		}
		for {
			n, err := pc.ReadBatch(msgs, 0)
			if err != nil {
				return
			}
			g.recv.Add(int64(n))
		}
	}()
	return g, nil
}

func (g *udpGen) port() int { return g.sink.LocalAddr().(*net.UDPAddr).Port }

func (g *udpGen) close() {
	g.snd.Close()
	g.sink.Close()
	<-g.done
}

// run paces batches of g.batch datagrams so that by any moment about
// rate × elapsed have gone. When it falls more than 2 ms behind (the CPU
// was taken), it gives up on the excess instead of bursting to catch up,
// and counts it in skipped.
func (g *udpGen) run(ctx context.Context, settle time.Duration) genStats {
	pc := ipv4.NewPacketConn(g.snd)
	payload := make([]byte, g.payload)
	msgs := make([]ipv4.Message, g.batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{payload}
	}
	r0 := g.recv.Load()
	var st genStats
	maxBehind := int64(max(g.rate/500, g.batch))
	start := time.Now()
	for ctx.Err() == nil {
		el := time.Since(start)
		due := int64(el.Seconds()*float64(g.rate)) - st.skipped
		owed := due - st.sent
		if owed > maxBehind {
			st.skipped += owed - maxBehind
			owed = maxBehind
		}
		if owed < int64(g.batch) {
			time.Sleep(time.Duration(float64(int64(g.batch)-owed) / float64(g.rate) * float64(time.Second)))
			continue
		}
		n, err := pc.WriteBatch(msgs[:min(owed, int64(g.batch))], 0)
		st.sent += int64(n)
		if err != nil {
			st.errs++
		}
	}
	st.elapsed = time.Since(start)
	// Let the sink catch up.
	deadline := time.Now().Add(settle)
	for g.recv.Load()-r0 < st.sent && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st.received = g.recv.Load() - r0
	return st
}

// tcpGen pumps a new loopback TCP connection per run as fast as it goes.
type tcpGen struct {
	ln net.Listener
}

func newTCPGen() (*tcpGen, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &tcpGen{ln: ln}, nil
}

func (g *tcpGen) port() int { return g.ln.Addr().(*net.TCPAddr).Port }
func (g *tcpGen) close()    { g.ln.Close() }

func (g *tcpGen) run(ctx context.Context, settle time.Duration) genStats {
	var st genStats
	type acc struct {
		c   net.Conn
		err error
	}
	accepted := make(chan acc, 1)
	go func() { c, err := g.ln.Accept(); accepted <- acc{c, err} }()
	snd, err := net.Dial("tcp4", g.ln.Addr().String())
	if err != nil {
		return st
	}
	a := <-accepted
	if a.err != nil {
		snd.Close()
		return st
	}
	rcv := a.c
	var got atomic.Int64
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		buf := make([]byte, 256<<10)
		for {
			n, err := rcv.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = snd.SetWriteDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 256<<10)
	start := time.Now()
	for {
		n, err := snd.Write(buf)
		st.sent += int64(n)
		if err != nil {
			break
		}
	}
	st.elapsed = time.Since(start)
	_ = snd.(*net.TCPConn).CloseWrite()
	select {
	case <-rdone:
	case <-time.After(settle):
	}
	snd.Close()
	rcv.Close()
	<-rdone
	st.received = got.Load()
	return st
}

// discard counts what it is given.
type discard struct{ n atomic.Int64 }

func (d *discard) Write(p []byte) (int, error) { d.n.Add(int64(len(p))); return len(p), nil }
