package agent

import (
	"bytes"
	"context"
	"runtime"
	"time"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// goroutines streams a goroutine dump in the requested format.
func (a *Agent) goroutines(ctx context.Context, req *agentv1.GetGoroutinesRequest, s sender) error {
	switch req.GetFormat() {
	case agentv1.GoroutineFormat_GOROUTINE_FORMAT_UNSPECIFIED, agentv1.GoroutineFormat_GOROUTINE_FORMAT_PROFILE:
		art := newArtifact(mediaPprof)
		w := newChunkWriter(s, art)
		err := goroutineProfile(w, art)
		if err == nil {
			err = w.finish()
		}
		return toStatus(ctx, err)
	case agentv1.GoroutineFormat_GOROUTINE_FORMAT_TEXT:
		release, err := a.slots.acquire(groupTextDump, "a text goroutine dump", "", 0)
		if err != nil {
			return err
		}
		defer release()
		art := newArtifact(mediaText)
		w := newChunkWriter(s, art)
		err = goroutineText(w, art, a.opts.MaxTextDumpBytes)
		if err == nil {
			err = w.finish()
		}
		return toStatus(ctx, err)
	default:
		return invalidArgf("unknown goroutine format %v: use GOROUTINE_FORMAT_PROFILE or GOROUTINE_FORMAT_TEXT", req.GetFormat())
	}
}

// goroutineProfile writes the goroutine profile (pprof debug=0): collected
// concurrently with sub-millisecond pauses, stacks grouped with counts.
func goroutineProfile(w *chunkWriter, art *artifact) error {
	art.attrs["path"] = "profile"
	art.attrs["source"] = "runtime.GoroutineProfile, grouped by stack in the agent (no pprof labels; stacks cut at 32 frames)"
	if err := w.begin(); err != nil {
		return err
	}
	n, err := writeGoroutineProfile(w)
	art.counters["goroutines"] = uint64(n)
	return err
}

// textBytesPerGoroutine sizes the text dump's buffer up front; debug=2 text
// averages well under 1 KiB per goroutine for stacks 5 to 20 frames deep, so
// one stop-the-world pass usually suffices.
const textBytesPerGoroutine = 2 << 10

// goroutineText writes every goroutine with its state, wait time and
// created-by (the debug=2 format). runtime.Stack(all) stops the world for the
// whole dump, so the buffer is sized from NumGoroutine up front and grown
// (another pass) only when full; unlike pprof's WriteTo(w, 2) it is not
// silently truncated at 64 MiB, only at maxBytes, and then says so.
func goroutineText(w *chunkWriter, art *artifact, maxBytes int) error {
	art.attrs["path"] = "text"
	art.attrs["source"] = "runtime.Stack(buf, true)"
	art.attrs["stops_the_world"] = "true"
	size := min(runtime.NumGoroutine()*textBytesPerGoroutine+64<<10, maxBytes)
	var (
		buf   []byte
		n     int
		stw   time.Duration
		tries uint64
	)
	for {
		buf = make([]byte, size)
		t0 := time.Now()
		n = runtime.Stack(buf, true)
		stw += time.Since(t0)
		tries++
		if n < len(buf) {
			break
		}
		if size >= maxBytes {
			art.truncated = true
			art.notef("the dump filled the %d-byte limit (Options.MaxTextDumpBytes) and was cut there", maxBytes)
			break
		}
		buf = nil
		size = min(size*2, maxBytes)
	}
	buf = buf[:n]
	art.counters["goroutines"] = uint64(bytes.Count(buf, []byte("\ngoroutine ")))
	if bytes.HasPrefix(buf, []byte("goroutine ")) {
		art.counters["goroutines"]++
	}
	art.counters["stop_the_world_ns"] = uint64(stw.Nanoseconds())
	art.counters["passes"] = tries
	if tries > 1 {
		art.notef("the buffer was too small and the world stopped %d times", tries)
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return nil
}
