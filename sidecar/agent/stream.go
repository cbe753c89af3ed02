package agent

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// maxChunk is the largest chunk an artifact stream carries.
const maxChunk = 64 << 10

// Media types of the artifacts.
const (
	mediaPprof = "application/vnd.google.protobuf+gzip" // gzipped profile.proto, what go tool pprof reads
	mediaTrace = "application/vnd.go.trace"             // what go tool trace reads
	mediaText  = "text/plain; charset=utf-8"
)

// artifact is what an engine tells the stream about what it produces: the
// header's media type and attributes, and the trailer's counters and notes.
type artifact struct {
	started   time.Time
	media     string
	attrs     map[string]string
	counters  map[string]uint64
	notes     []string
	truncated bool
}

func newArtifact(media string) *artifact {
	return &artifact{started: time.Now(), media: media, attrs: map[string]string{}, counters: map[string]uint64{}}
}

func (a *artifact) notef(format string, args ...any) {
	a.notes = append(a.notes, fmt.Sprintf(format, args...))
}

func (a *artifact) header() *agentv1.Header {
	return &agentv1.Header{MediaType: a.media, Started: timestamppb.New(a.started), Attributes: a.attrs}
}

func (a *artifact) trailer(bytes uint64) *agentv1.Trailer {
	return &agentv1.Trailer{Bytes: bytes, Duration: durationpb.New(time.Since(a.started)), Counters: a.counters, Notes: a.notes, Truncated: a.truncated}
}

// sender sends the three parts of an artifact stream; it adapts the two
// generated stream types.
type sender struct {
	header  func(*agentv1.Header) error
	chunk   func([]byte) error
	trailer func(*agentv1.Trailer) error
}

func goroutinesSender(s agentv1.AgentService_GetGoroutinesServer) sender {
	return sender{
		header: func(h *agentv1.Header) error {
			return s.Send(&agentv1.GetGoroutinesResponse{Part: &agentv1.GetGoroutinesResponse_Header{Header: h}})
		},
		chunk: func(b []byte) error {
			return s.Send(&agentv1.GetGoroutinesResponse{Part: &agentv1.GetGoroutinesResponse_Chunk{Chunk: &agentv1.Chunk{Data: b}}})
		},
		trailer: func(t *agentv1.Trailer) error {
			return s.Send(&agentv1.GetGoroutinesResponse{Part: &agentv1.GetGoroutinesResponse_Trailer{Trailer: t}})
		},
	}
}

func profileSender(s agentv1.AgentService_ProfileServer) sender {
	return sender{
		header: func(h *agentv1.Header) error {
			return s.Send(&agentv1.ProfileResponse{Part: &agentv1.ProfileResponse_Header{Header: h}})
		},
		chunk: func(b []byte) error {
			return s.Send(&agentv1.ProfileResponse{Part: &agentv1.ProfileResponse_Chunk{Chunk: &agentv1.Chunk{Data: b}}})
		},
		trailer: func(t *agentv1.Trailer) error {
			return s.Send(&agentv1.ProfileResponse{Part: &agentv1.ProfileResponse_Trailer{Trailer: t}})
		},
	}
}

// chunkWriter is the io.Writer engines write artifacts to. It coalesces
// writes into one 64 KiB buffer and sends it as a chunk when full, so memory
// stays at one chunk whatever the artifact's size. Send blocks while the
// client's flow-control window is full, which blocks the writer: that is the
// backpressure. (A pipe and a sending goroutine would do the same with one
// more goroutine and one more copy.) The header goes out before the first
// chunk. After a failed send every write fails at once, so producers that
// cannot be interrupted (the CPU profile and trace writers) drain quickly.
// Safe for one writer goroutine at a time plus the handler (mutex).
type chunkWriter struct {
	mu     sync.Mutex
	s      sender
	art    *artifact
	began  bool
	buf    []byte
	n      uint64
	err    error
	closed bool
}

func newChunkWriter(s sender, art *artifact) *chunkWriter {
	return &chunkWriter{s: s, art: art}
}

// begin sends the header if it has not gone yet.
func (w *chunkWriter) begin() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.beginLocked()
}

func (w *chunkWriter) beginLocked() error {
	if w.began || w.err != nil {
		return w.err
	}
	w.began = true
	if err := w.s.header(w.art.header()); err != nil {
		w.err = fmt.Errorf("send header: %w", err)
	}
	return w.err
}

// Write implements io.Writer.
func (w *chunkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed && w.err == nil {
		w.err = fmt.Errorf("write after the artifact ended")
	}
	if err := w.beginLocked(); err != nil {
		return 0, err
	}
	if w.buf == nil {
		w.buf = make([]byte, 0, maxChunk)
	}
	written := 0
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		written += k
		if len(w.buf) == cap(w.buf) {
			if err := w.flushLocked(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (w *chunkWriter) flushLocked() error {
	if len(w.buf) == 0 || w.err != nil {
		return w.err
	}
	if err := w.s.chunk(w.buf); err != nil {
		w.err = fmt.Errorf("send chunk: %w", err)
		return w.err
	}
	w.n += uint64(len(w.buf))
	w.buf = w.buf[:0] // Send has serialised the message: the buffer is ours again
	return nil
}

// finish flushes, refuses later writes and sends the trailer.
func (w *chunkWriter) finish() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if err := w.beginLocked(); err != nil {
		return err
	}
	if err := w.flushLocked(); err != nil {
		return err
	}
	w.art.counters["bytes"] = w.n
	if err := w.s.trailer(w.art.trailer(w.n)); err != nil {
		return fmt.Errorf("send trailer: %w", err)
	}
	return nil
}

// fail makes every later write fail with err (used when the client is gone).
func (w *chunkWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}
