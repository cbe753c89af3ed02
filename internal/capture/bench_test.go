//go:build linux

package capture

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/net/bpf"
)

// The benchmarks run on the loopback of a private network namespace, so
// other traffic on the machine does not disturb them. For the comparison
// with github.com/gopacket/gopacket/afpacket both readers get the same ring
// (8 MiB in 128 KiB blocks, 10 ms block timeout) and the same kernel program
// (this package's, with the loopback prefix, so neither sees duplicates).

// reader abstracts the two implementations.
type reader interface {
	read(ctx context.Context) ([]byte, error)
	close()
}

type ownReader struct{ h *Handle }

func (r ownReader) read(ctx context.Context) ([]byte, error) {
	d, _, err := r.h.ReadPacket(ctx)
	return d, err
}
func (r ownReader) close() { r.h.Close() }

// gpReader reads with gopacket's afpacket. It has no context: the usual
// way to stop it is a poll timeout and a check between reads.
type gpReader struct{ tp *afpacket.TPacket }

func (r gpReader) read(ctx context.Context) ([]byte, error) {
	for {
		d, _, err := r.tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		return d, err
	}
}
func (r gpReader) close() { r.tp.Close() }

func openReader(b *testing.B, ns *nsWorker, impl string, filter []bpf.RawInstruction, pollTimeout time.Duration) reader {
	b.Helper()
	if impl == "own" {
		h := ns.open(b, Options{Interface: "lo", Filter: filter, SnapLen: 65535})
		return ownReader{h}
	}
	var tp *afpacket.TPacket
	var err error
	ns.do(func() {
		tp, err = afpacket.NewTPacket(afpacket.OptInterface("lo"), afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
			afpacket.OptFrameSize(128<<10), afpacket.OptBlockSize(128<<10), afpacket.OptNumBlocks(64),
			afpacket.OptBlockTimeout(10*time.Millisecond), afpacket.OptPollTimeout(pollTimeout))
		if err != nil {
			return
		}
		var p program
		if p, err = buildProgram(filter, false, 65535, dropOutgoingPrefix()); err == nil {
			err = tp.SetBPF(p.kernel)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tp.Close)
	return gpReader{tp}
}

// BenchmarkReadPacket measures ReadPacket alone: each round fills the ring
// with 20000 small UDP datagrams (timer stopped), then times reading them
// out. ns/op is per packet.
func BenchmarkReadPacket(b *testing.B) {
	for _, impl := range []string{"own", "gopacket"} {
		b.Run(impl, func(b *testing.B) {
			ns := newNS(b)
			u := ns.udp(b, "127.0.0.1:0", "127.0.0.1")
			r := openReader(b, ns, impl, ethUDPDst(b, u.port), 100*time.Millisecond)
			payload := make([]byte, 18) // 60-byte frames
			const round = 20000
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(round, b.N-done)
				b.StopTimer()
				for range n {
					u.cli.Write(payload)
				}
				time.Sleep(30 * time.Millisecond) // every block retired
				b.StartTimer()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)

				for range n {
					if _, err := r.read(ctx); err != nil {
						b.Fatalf("after %d packets: %v", done, err)
					}
					done++
				}
				cancel()
			}
		})
	}
}

// BenchmarkLoopbackLive: a sender floods small datagrams while the reader
// reads; reports the packets/s read and the kernel's drops. On a 2-core
// machine the sender, the kernel and the reader share the CPUs.
func BenchmarkLoopbackLive(b *testing.B) {
	ns := newNS(b)
	u := ns.udp(b, "127.0.0.1:0", "127.0.0.1")
	h := ns.open(b, Options{Interface: "lo", Filter: ethUDPDst(b, u.port), SnapLen: 65535})
	payload := make([]byte, 18)
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		for range b.N {
			u.cli.Write(payload)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := 0
	sendDone := make(chan struct{})
	go func() { wg.Wait(); close(sendDone) }()
read:
	for got < b.N {
		rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, _, err := h.ReadPacket(rctx)
		rcancel()
		if err != nil {
			select {
			case <-sendDone:
				break read
			default:
				continue
			}
		}
		got++
	}
	el := time.Since(start)
	<-sendDone
	st, _ := h.Stats()
	b.ReportMetric(float64(got)/el.Seconds(), "pkts/s")
	b.ReportMetric(float64(st.Drops), "drops")
	b.ReportMetric(float64(b.N-got), "missing")
}

// BenchmarkCancelLatency: time from cancel to ReadPacket returning, the
// reader blocked on an idle interface. For gopacket, with a 100 ms poll
// timeout (the largest that meets the 100 ms requirement) and a context
// check between polls.
func BenchmarkCancelLatency(b *testing.B) {
	for _, impl := range []string{"own", "gopacket"} {
		b.Run(impl, func(b *testing.B) {
			ns := newNS(b)
			u := ns.udp(b, "127.0.0.1:0", "127.0.0.1")
			r := openReader(b, ns, impl, ethUDPDst(b, u.port), 100*time.Millisecond)
			var total, worst time.Duration
			b.ResetTimer()
			for range b.N {
				ctx, cancel := context.WithCancel(context.Background())
				var at time.Time
				go func() {
					time.Sleep(time.Millisecond)
					at = time.Now()
					cancel()
				}()
				if _, err := r.read(ctx); !errors.Is(err, context.Canceled) {
					b.Fatal(err)
				}
				lat := time.Since(at)
				total += lat
				worst = max(worst, lat)
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-mean")
			b.ReportMetric(float64(worst.Microseconds()), "µs-max")
		})
	}
}

// BenchmarkUnfilteredAtOpen counts, per open, the packets a handle returns
// that its filter rejects, with traffic flowing while it opens. This package
// attaches the filter before bind, so the answer is 0; gopacket binds in
// NewTPacket and filters afterwards (SetBPF), so whatever arrived between
// the two is delivered unfiltered.
func BenchmarkUnfilteredAtOpen(b *testing.B) {
	for _, impl := range []string{"own", "gopacket"} {
		b.Run(impl, func(b *testing.B) {
			ns := newNS(b)
			noise := ns.udp(b, "127.0.0.1:0", "127.0.0.1")
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, 16)
				for {
					select {
					case <-stop:
						return
					default:
						noise.cli.Write(p)
					}
				}
			}()
			filter := ethUDPDst(b, 9) // nothing is sent to port 9
			leaked := 0
			for range b.N {
				r := openReader(b, ns, impl, filter, 10*time.Millisecond)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
				for {
					if _, err := r.read(ctx); err != nil {
						break
					}
					leaked++
				}
				cancel()
				r.close()
			}
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(leaked)/float64(b.N), "unfiltered/open")
		})
	}
}
