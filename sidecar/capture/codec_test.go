package capture

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func chunkResponse(data []byte) *triagev1.CaptureResponse {
	return &triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: data}}}
}

// TestChunkCodec: a lent chunk is encoded exactly as proto.Marshal encodes
// it, without a copy, and its buffer comes back to the queue once gRPC
// frees it; everything else is left to the proto codec.
func TestChunkCodec(t *testing.T) {
	codec := encoding.GetCodecV2(ContentSubtype)
	if codec == nil {
		t.Fatalf("no codec registered as %q", ContentSubtype)
	}
	for _, n := range []int{1, 127, 128, 16383, 16384, chunkSize} {
		q := newChunkQueue(1 << 20)
		b := q.buffer()
		for i := range n {
			b = append(b, byte(i*7))
		}
		m := chunkResponse(b)
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		lent.Store(m.GetChunk(), q)
		got, err := codec.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, still := lent.Load(m.GetChunk()); still {
			t.Fatalf("%d bytes: the codec did not take the lent buffer", n)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Fatalf("%d bytes: encoded differently from proto.Marshal", n)
		}
		if &got[len(got)-1].ReadOnlyData()[0] != &b[0] {
			t.Fatalf("%d bytes: the chunk was copied", n)
		}
		if len(q.free) != 0 {
			t.Fatalf("%d bytes: buffer recycled while gRPC holds it", n)
		}
		got.Free()
		if len(q.free) != 1 || cap(q.free[0]) != chunkSize {
			t.Fatalf("%d bytes: buffer not given back after Free (free list %d)", n, len(q.free))
		}
	}

	// Not lent, and other messages: the proto codec's bytes.
	for _, m := range []*triagev1.CaptureResponse{
		chunkResponse([]byte("not lent")),
		chunkResponse(nil),
		{Part: &triagev1.CaptureResponse_Trailer{Trailer: &triagev1.ArtifactTrailer{Bytes: 3, StopReason: "count"}}},
	} {
		got, err := codec.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := proto.Marshal(m)
		if !bytes.Equal(got.Materialize(), want) {
			t.Fatalf("%v: encoded differently from proto.Marshal", m)
		}
		var back triagev1.CaptureResponse
		if err := codec.Unmarshal(got, &back); err != nil || !proto.Equal(&back, m) {
			t.Fatalf("%v: decoded %v, %v", m, &back, err)
		}
	}
}
