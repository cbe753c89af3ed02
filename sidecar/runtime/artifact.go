package runtime

import (
	"fmt"
	"io"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// chunkSize is the shared artifact chunk size (see capability.ChunkBytes).
const chunkSize = capability.ChunkBytes

// agentPart is one message of an agent artifact stream.
type agentPart interface {
	GetHeader() *agentv1.Header
	GetChunk() *agentv1.Chunk
	GetTrailer() *agentv1.Trailer
}

// sink receives an artifact in the public API's shape.
type sink struct {
	header  func(*triagev1.ArtifactHeader) error
	chunk   func([]byte) error
	trailer func(*triagev1.ArtifactTrailer) error
}

// relay copies an agent artifact stream to s, converting each part, with
// at most max bytes of data (the trailer then says truncated).
func relay[M agentPart](recv func() (M, error), s sink, max int64) (sent int64, err error) {
	for {
		m, err := recv()
		if err == io.EOF {
			return sent, nil
		}
		if err != nil {
			return sent, err
		}
		switch {
		case m.GetHeader() != nil:
			h := m.GetHeader()
			if err := s.header(&triagev1.ArtifactHeader{MediaType: h.MediaType, Started: h.Started, Attributes: h.Attributes}); err != nil {
				return sent, err
			}
		case m.GetChunk() != nil:
			data := m.GetChunk().Data
			if sent+int64(len(data)) > max {
				return sent, errTooLarge{max: max}
			}
			sent += int64(len(data))
			if err := s.chunk(data); err != nil {
				return sent, err
			}
		case m.GetTrailer() != nil:
			t := m.GetTrailer()
			tr := &triagev1.ArtifactTrailer{Bytes: t.Bytes, Duration: t.Duration, Truncated: t.Truncated, Counters: t.Counters, Notes: t.Notes}
			if err := s.trailer(tr); err != nil {
				return sent, err
			}
		}
	}
}

// collect reads an agent artifact stream's data into w.
func collect[M agentPart](recv func() (M, error), w io.Writer, max int64) (*agentv1.Header, *agentv1.Trailer, error) {
	var h *agentv1.Header
	var t *agentv1.Trailer
	var n int64
	for {
		m, err := recv()
		if err == io.EOF {
			return h, t, nil
		}
		if err != nil {
			return h, t, err
		}
		switch {
		case m.GetHeader() != nil:
			h = m.GetHeader()
		case m.GetChunk() != nil:
			data := m.GetChunk().Data
			if n += int64(len(data)); n > max {
				return h, t, errTooLarge{max: max}
			}
			if _, err := w.Write(data); err != nil {
				return h, t, err
			}
		case m.GetTrailer() != nil:
			t = m.GetTrailer()
		}
	}
}

type errTooLarge struct{ max int64 }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("the artifact exceeds %d bytes (--max-dump-bytes)", e.max)
}

// chunkWriter sends what is written as artifact chunks of at most chunkSize,
// for sources that write to an io.Writer (gops).
type chunkWriter struct {
	send func([]byte) error
	n    int64
	max  int64
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), chunkSize)
		if w.n+int64(n) > w.max {
			return written, errTooLarge{max: w.max}
		}
		// Copy: the gRPC stream may hold the slice after Send returns.
		if err := w.send(append([]byte(nil), p[:n]...)); err != nil {
			return written, err
		}
		w.n += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}
