package client

import (
	"errors"
	"fmt"
	"io"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// ArtifactMessage is a message of an artifact stream: a generated response
// whose oneof holds a triagev1.ArtifactHeader, ArtifactChunk or
// ArtifactTrailer under the field names header, chunk and trailer. The
// generated getters return nil for the parts a message does not hold.
type ArtifactMessage interface {
	GetHeader() *triagev1.ArtifactHeader
	GetChunk() *triagev1.ArtifactChunk
	GetTrailer() *triagev1.ArtifactTrailer
}

// ArtifactStream is the receiving side of a server stream of M, as every
// generated grpc.ServerStreamingClient[M] is.
type ArtifactStream[M ArtifactMessage] interface {
	Recv() (M, error)
}

// Artifact is what ReadArtifact received besides the bytes.
type Artifact struct {
	// Header is the first message: media type, suggested file name, attributes.
	Header *triagev1.ArtifactHeader
	// Trailer is the last message: the server's count, truncation, counters.
	Trailer *triagev1.ArtifactTrailer
	// Written is the number of bytes written to the writer.
	Written int64
}

// ErrArtifactProtocol is wrapped by the errors ReadArtifact returns when
// the stream breaks the header/chunks/trailer convention.
var ErrArtifactProtocol = errors.New("artifact stream out of order")

// ArtifactOption changes how ReadArtifact reads.
type ArtifactOption func(*artifactOptions)

type artifactOptions struct {
	onHeader   func(*triagev1.ArtifactHeader) error
	onProgress func(written int64)
	onCounters func(*triagev1.ArtifactProgress)
}

// progressMessage is an artifact message that may also carry the server's
// running counters (the capture stream does).
type progressMessage interface {
	GetProgress() *triagev1.ArtifactProgress
}

// OnCounters calls f with each progress message the server sends between
// chunks (running counters such as packets and drops).
func OnCounters(f func(*triagev1.ArtifactProgress)) ArtifactOption {
	return func(o *artifactOptions) { o.onCounters = f }
}

// OnHeader calls f with the header before any bytes are written, e.g. to
// print what is coming or to refuse an unexpected media type (its error
// stops the read and is returned).
func OnHeader(f func(*triagev1.ArtifactHeader) error) ArtifactOption {
	return func(o *artifactOptions) { o.onHeader = f }
}

// OnProgress calls f with the total number of bytes written so far after
// each chunk, e.g. to draw a progress line. It runs on the reading
// goroutine, so a slow f slows the read.
func OnProgress(f func(written int64)) ArtifactOption {
	return func(o *artifactOptions) { o.onProgress = f }
}

// ReadArtifact copies an artifact stream into w: exactly one header, then
// chunks written in order as they arrive (nothing is buffered, so a slow w
// slows the server), then exactly one trailer, then the end of the stream.
// It returns what it received even on error, so a caller can tell how much
// was written. Errors from the stream keep their gRPC status; a stream
// that breaks the convention (no header first, a trailer missing, a byte
// count that disagrees with the trailer) returns an error wrapping
// ErrArtifactProtocol; a truncated artifact is not an error (see
// Trailer.Truncated).
func ReadArtifact[M ArtifactMessage](stream ArtifactStream[M], w io.Writer, opts ...ArtifactOption) (*Artifact, error) {
	var o artifactOptions
	for _, opt := range opts {
		opt(&o)
	}
	a := &Artifact{}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if a.Trailer == nil {
				return a, fmt.Errorf("%w: the stream ended after %d bytes without a trailer, so the artifact is incomplete", ErrArtifactProtocol, a.Written)
			}
			return a, nil
		}
		if err != nil {
			return a, fmt.Errorf("receive artifact after %d bytes: %w", a.Written, err)
		}
		if a.Trailer != nil {
			return a, fmt.Errorf("%w: a message followed the trailer", ErrArtifactProtocol)
		}
		switch h, c, t := m.GetHeader(), m.GetChunk(), m.GetTrailer(); {
		case h != nil:
			if a.Header != nil {
				return a, fmt.Errorf("%w: a second header", ErrArtifactProtocol)
			}
			a.Header = h
			if o.onHeader != nil {
				if err := o.onHeader(h); err != nil {
					return a, err
				}
			}
		case c != nil:
			if a.Header == nil {
				return a, fmt.Errorf("%w: a chunk before the header", ErrArtifactProtocol)
			}
			n, err := w.Write(c.GetData())
			a.Written += int64(n)
			if err != nil {
				return a, fmt.Errorf("write artifact after %d bytes: %w", a.Written, err)
			}
			if o.onProgress != nil {
				o.onProgress(a.Written)
			}
		case t != nil:
			if a.Header == nil {
				return a, fmt.Errorf("%w: a trailer before the header", ErrArtifactProtocol)
			}
			a.Trailer = t
			if t.GetBytes() != uint64(a.Written) {
				return a, fmt.Errorf("%w: the trailer counts %d bytes but %d arrived", ErrArtifactProtocol, t.GetBytes(), a.Written)
			}
		default:
			if pm, ok := any(m).(progressMessage); ok && pm.GetProgress() != nil {
				if a.Header == nil {
					return a, fmt.Errorf("%w: progress before the header", ErrArtifactProtocol)
				}
				if o.onCounters != nil {
					o.onCounters(pm.GetProgress())
				}
				continue
			}
			return a, fmt.Errorf("%w: a message with neither header, chunk nor trailer", ErrArtifactProtocol)
		}
	}
}
