package capture

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// ContentSubtype is the gRPC content-subtype under which the Go client
// calls Capture (client.Capture sends it; a client that does not gets the
// plain proto codec). The wire format is protobuf all the same: the codec
// registered under this name only sends the pcapng chunks without copying
// them into a marshalling buffer. An older sidecar that does not know the
// name falls back to the proto codec (grpc-go logs a warning).
const ContentSubtype = "triage-capture"

func init() {
	encoding.RegisterCodecV2(chunkCodec{CodecV2: encoding.GetCodecV2(proto.Name)})
}

// lent holds the chunk messages being sent whose buffers the codec may
// take over: *triagev1.ArtifactChunk -> the *chunkQueue the buffer goes
// back to. The stream writer stores an entry before Send and deletes it
// after; the codec takes it (LoadAndDelete) when it sends the buffer
// without a copy, and gRPC gives the buffer back (chunkQueue.Put) once the
// bytes are on the wire.
var lent sync.Map

// chunkCodec is gRPC's proto codec except for the capture chunks lent to
// it: those are sent as a few bytes of protobuf framing followed by the
// chunk buffer itself, where proto.Marshal would copy every chunk into a
// pooled buffer first (about a fifth of the sidecar's CPU time streaming
// bulk TCP).
type chunkCodec struct {
	encoding.CodecV2 // gRPC's proto codec
}

// Name implements encoding.CodecV2.
func (chunkCodec) Name() string { return ContentSubtype }

// Marshal implements encoding.CodecV2.
func (c chunkCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*triagev1.CaptureResponse); ok {
		if ch := m.GetChunk(); ch != nil && len(ch.GetData()) > 0 {
			if q, ok := lent.LoadAndDelete(ch); ok {
				data := ch.GetData()
				return mem.BufferSlice{
					mem.SliceBuffer(chunkFraming(len(data))),
					mem.NewBuffer(&data, q.(*chunkQueue)),
				}, nil
			}
		}
	}
	return c.CodecV2.Marshal(v)
}

// chunkFraming is the protobuf encoding of a CaptureResponse holding a
// chunk of n > 0 bytes, up to the bytes themselves.
func chunkFraming(n int) []byte {
	inner := protowire.SizeTag(1) + protowire.SizeBytes(n)
	b := make([]byte, 0, 16)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

// Get implements mem.BufferPool for the buffers lent to gRPC; gRPC only
// gives them back (Put) and never asks this pool for one.
func (q *chunkQueue) Get(length int) *[]byte {
	b := make([]byte, length)
	return &b
}

// Put implements mem.BufferPool: gRPC is done with a chunk it sent.
func (q *chunkQueue) Put(b *[]byte) { q.recycle(*b) }
