package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// cancelResult holds the latencies of each try, sorted.
type cancelResult struct {
	filter    string
	stop      []time.Duration // StopCapture sent -> trailer received
	stopRPC   []time.Duration // StopCapture sent -> its reply
	readmit   []time.Duration // client context cancelled -> the next capture's header
	attempts  []int           // Capture calls refused before the next was admitted, per try
	stopNotes []string        // stop reasons other than "client", if any
}

// idleFilter matches nothing on lo while the report runs.
const idleFilter = "udp and dst port 9 and src port 9"

// running is a Capture call in flight.
type running struct {
	id     string
	cancel context.CancelFunc
	done   chan error
	art    *client.Artifact
}

// startCapture calls Capture on an idle filter and waits for its header
// (the socket is open and bound by then), or its error.
func startCapture(c *client.Client) (*running, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	hdr := make(chan string, 1)
	req := &triagev1.CaptureRequest{Filter: idleFilter, Interface: "lo", Duration: durationpb.New(5 * time.Minute)}
	go func() {
		art, err := c.Capture(ctx, req, io.Discard, client.OnHeader(func(h *triagev1.ArtifactHeader) error {
			hdr <- h.GetAttributes()["capture_id"]
			return nil
		}))
		r.art = art
		r.done <- err
	}()
	select {
	case r.id = <-hdr:
		return r, nil
	case err := <-r.done:
		cancel()
		if err == nil {
			err = errors.New("the capture ended before its header")
		}
		return nil, err
	case <-time.After(10 * time.Second):
		cancel()
		return nil, errors.New("no header within 10 s")
	}
}

// measureCancel times, p.cancelTries times each, StopCapture to the trailer
// and cancelling the client's context to the next capture admitted (with
// --capture-max-concurrent 1, the default, the next is refused until the
// slot is free; it is retried at once).
func measureCancel(p params, sc *sidecar) (cancelResult, error) {
	res := cancelResult{filter: idleFilter}
	ctx := context.Background()
	c, err := sc.dial()
	if err != nil {
		return res, err
	}
	defer c.Close()
	progress("cancel-to-stop: %d StopCapture tries, then %d context cancels, on an idle filter (%s)", p.cancelTries, p.cancelTries, idleFilter)

	for range p.cancelTries {
		r, err := startCapture(c)
		if err != nil {
			return res, fmt.Errorf("start: %w", err)
		}
		time.Sleep(150 * time.Millisecond) // the reader is parked in poll
		t0 := time.Now()
		if err := c.StopCapture(ctx, r.id); err != nil {
			r.cancel()
			return res, fmt.Errorf("StopCapture: %w", err)
		}
		res.stopRPC = append(res.stopRPC, time.Since(t0))
		select {
		case err = <-r.done:
		case <-time.After(10 * time.Second):
			r.cancel()
			return res, errors.New("no trailer within 10 s of StopCapture")
		}
		res.stop = append(res.stop, time.Since(t0))
		r.cancel()
		if err != nil {
			return res, fmt.Errorf("capture after StopCapture: %w", err)
		}
		if sr := r.art.Trailer.GetStopReason(); sr != "client" {
			res.stopNotes = append(res.stopNotes, sr)
		}
	}

	cur, err := startCapture(c)
	if err != nil {
		return res, err
	}
	for range p.cancelTries {
		time.Sleep(150 * time.Millisecond)
		t0 := time.Now()
		cur.cancel()
		attempts := 0
		var next *running
		for next == nil {
			if time.Since(t0) > 10*time.Second {
				return res, fmt.Errorf("no capture admitted within 10 s of cancelling the previous one (%d refused, the last: %v)", attempts, err)
			}
			if next, err = startCapture(c); err != nil {
				attempts++
				time.Sleep(time.Millisecond)
			}
		}
		res.readmit = append(res.readmit, time.Since(t0))
		res.attempts = append(res.attempts, attempts)
		<-cur.done
		cur = next
	}
	if err := c.StopCapture(ctx, cur.id); err != nil {
		cur.cancel()
		return res, err
	}
	<-cur.done
	cur.cancel()
	slices.Sort(res.stop)
	slices.Sort(res.stopRPC)
	slices.Sort(res.readmit)
	progress("cancel-to-stop: StopCapture -> trailer median %s max %s; cancel -> next admitted median %s max %s",
		res.stop[len(res.stop)/2], res.stop[len(res.stop)-1], res.readmit[len(res.readmit)/2], res.readmit[len(res.readmit)-1])
	return res, nil
}
