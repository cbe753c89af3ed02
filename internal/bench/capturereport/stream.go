package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/internal/bench"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// streamResult is the sidecar's memory while it streams a large capture.
type streamResult struct {
	idle      bench.Memory // before the capture
	peak      bench.Memory // the sample with the largest VmRSS during it
	hwm       int64        // VmHWM after it: the peak RSS of the process's life
	samples   int
	want      int64 // bytes asked for
	capture   captureJSON
	took      time.Duration // the trailer's duration
	cpu       time.Duration // the sidecar's CPU time during the capture
	flowBytes int64         // what the TCP flow moved meanwhile
	flowTook  time.Duration
}

// measureStream streams a p.streamBytes capture of a bulk TCP flow on lo
// to a Go client that discards it, the capture ended by max bytes,
// sampling the sidecar's RSS every 20 ms.
func measureStream(p params, sc *sidecar) (streamResult, error) {
	res := streamResult{want: p.streamBytes}
	time.Sleep(time.Second) // let the fresh sidecar settle
	var err error
	if res.idle, err = bench.ReadMemory(sc.pid()); err != nil {
		return res, err
	}
	g, err := newTCPGen()
	if err != nil {
		return res, err
	}
	defer g.close()
	filter := fmt.Sprintf("tcp port %d", g.port())
	progress("streaming a %s capture of bulk TCP (%s) to a discarding Go client; sidecar idle RSS %s", bench.MiB(p.streamBytes), filter, bench.MiB(res.idle.RSS))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var flow genStats
	wg.Go(func() {
		for ctx.Err() == nil {
			st := g.run(ctx, 100*time.Millisecond)
			flow.sent += st.sent
			flow.elapsed += st.elapsed
			if st.elapsed == 0 {
				return
			}
		}
	})
	stopSampling := make(chan struct{})
	var sampleErr error
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
			m, err := bench.ReadMemory(sc.pid())
			if err != nil {
				sampleErr = err
				return
			}
			res.samples++
			if m.RSS > res.peak.RSS {
				res.peak = m
			}
		}
	})
	c, err := sc.dial()
	if err != nil {
		return res, err
	}
	defer c.Close()
	t0, err := bench.CPUTicks(sc.pid())
	if err != nil {
		return res, err
	}
	var w discard
	art, runErr := c.Capture(context.Background(), &triagev1.CaptureRequest{Filter: filter, Interface: "lo", Duration: durationpb.New(90 * time.Second), MaxBytes: p.streamBytes}, &w)
	close(stopSampling)
	sampler.Wait()
	cancel()
	wg.Wait()
	res.flowBytes, res.flowTook = flow.sent, flow.elapsed
	if runErr != nil {
		return res, fmt.Errorf("capture: %w", runErr)
	}
	if sampleErr != nil {
		return res, sampleErr
	}
	m, err := bench.ReadMemory(sc.pid())
	if err != nil {
		return res, err
	}
	res.hwm = m.HWM
	t1, err := bench.CPUTicks(sc.pid())
	if err != nil {
		return res, err
	}
	res.cpu = time.Duration(t1-t0) * bench.ClockTick
	t := art.Trailer
	cs := t.GetCounters()
	res.capture = captureJSON{Packets: int64(cs["packets"]), Bytes: w.n.Load(), KernelDrops: int64(cs["kernel_drops"]), StreamDrops: int64(cs["stream_drops"]), StopReason: t.GetStopReason()}
	res.took = t.GetDuration().AsDuration()
	progress("streamed %s in %s (stop reason %s), %d packets, kernel drops %d, stream drops %d; sidecar VmHWM %s",
		bench.MiB(res.capture.Bytes), res.took.Round(time.Millisecond), res.capture.StopReason, res.capture.Packets,
		res.capture.KernelDrops, res.capture.StreamDrops, bench.MiB(res.hwm))
	return res, nil
}

func (s streamResult) mibps() float64 {
	if s.took <= 0 {
		return 0
	}
	return float64(s.capture.Bytes) / (1 << 20) / s.took.Seconds()
}
