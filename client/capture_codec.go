package client

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// captureContentSubtype is the content-subtype Capture asks for: the
// sidecar's codec of that name (sidecar/capture.ContentSubtype) sends the
// chunks without a marshalling copy. It is protobuf on the wire; a sidecar
// that does not know the name uses its proto codec.
const captureContentSubtype = "triage-capture"

// captureCodec is the codec of one Capture call. It is gRPC's proto codec,
// except that
// a response that is only a chunk is decoded into a buffer the call
// reuses: the pcapng bytes are copied once out of gRPC's receive buffers,
// with no allocation per chunk, where proto.Unmarshal would allocate and
// copy every chunk (the largest cost of a bulk capture in the client).
//
// The chunk's Data is therefore valid only until the next message is
// received: ReadArtifact writes it before it receives the next one.
type captureCodec struct {
	encoding.CodecV2 // gRPC's proto codec, for everything else
	buf              []byte
}

func newCaptureCodec() *captureCodec {
	return &captureCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

// chunkTag is the first byte of a CaptureResponse holding a chunk: field 2
// (chunk), length-delimited.
var chunkTag = byte(protowire.EncodeTag(2, protowire.BytesType))

// Unmarshal implements encoding.CodecV2.
func (c *captureCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*triagev1.CaptureResponse)
	if !ok || len(data) == 0 || len(data[0].ReadOnlyData()) == 0 || data[0].ReadOnlyData()[0] != chunkTag {
		return c.CodecV2.Unmarshal(data, v)
	}
	n := data.Len()
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	b := c.buf[:n]
	data.CopyTo(b)
	chunk, ok := parseChunk(b)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	m.Part = &triagev1.CaptureResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: chunk}}
	return nil
}

// parseChunk decodes b if it is exactly a CaptureResponse whose only field
// is a chunk with only its data (what the server sends); ok is false for
// anything else, which the proto codec then decodes. chunk aliases b.
func parseChunk(b []byte) (chunk []byte, ok bool) {
	inner, ok := consumeOnly(b, 2)
	if !ok {
		return nil, false
	}
	if len(inner) == 0 {
		return nil, true // an empty chunk
	}
	return consumeOnly(inner, 1)
}

// consumeOnly returns the value of b's length-delimited field num when b
// is exactly that one field.
func consumeOnly(b []byte, num protowire.Number) ([]byte, bool) {
	n, typ, k := protowire.ConsumeTag(b)
	if k < 0 || n != num || typ != protowire.BytesType {
		return nil, false
	}
	v, l := protowire.ConsumeBytes(b[k:])
	if l < 0 || k+l != len(b) {
		return nil, false
	}
	return v, true
}
