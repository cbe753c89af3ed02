package client

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// split cuts b into a BufferSlice of pieces of at most n bytes, as gRPC
// hands over a message received in several HTTP/2 frames.
func split(b []byte, n int) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		s = append(s, mem.SliceBuffer(append([]byte(nil), b[:k]...)))
		b = b[k:]
	}
	return s
}

func TestCaptureCodecUnmarshal(t *testing.T) {
	chunk := func(d []byte) *triagev1.CaptureResponse {
		return &triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: d}}}
	}
	big := bytes.Repeat([]byte("pcapng"), 32<<10/6)
	for _, tc := range []struct {
		name string
		msg  *triagev1.CaptureResponse
	}{
		{"32 KiB chunk", chunk(big)},
		{"small chunk", chunk([]byte{1, 2, 3})},
		{"empty chunk", chunk(nil)},
		{"header", &triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Header{Header: &triagev1.ArtifactHeader{MediaType: "application/x-pcapng", Attributes: map[string]string{"capture_id": "x"}}}}},
		{"trailer", &triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Trailer{Trailer: &triagev1.ArtifactTrailer{Bytes: 9, StopReason: "count", Duration: durationpb.New(1)}}}},
		{"progress", &triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Progress{Progress: &triagev1.ArtifactProgress{Counters: map[string]uint64{"packets": 1}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := proto.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			c := newCaptureCodec()
			for _, piece := range []int{16 << 10, 7, len(wire) + 1} {
				var got triagev1.CaptureResponse
				if err := c.Unmarshal(split(wire, max(piece, 1)), &got); err != nil {
					t.Fatalf("pieces of %d: %v", piece, err)
				}
				if !proto.Equal(&got, tc.msg) {
					t.Fatalf("pieces of %d: decoded %v, want %v", piece, &got, tc.msg)
				}
			}
		})
	}
	t.Run("chunk with an unknown field", func(t *testing.T) {
		wire, _ := proto.Marshal(chunk([]byte("abc")))
		wire = append(wire, 0x48, 0x01) // field 9, varint 1
		var got triagev1.CaptureResponse
		if err := newCaptureCodec().Unmarshal(split(wire, 4), &got); err != nil {
			t.Fatal(err)
		}
		if string(got.GetChunk().GetData()) != "abc" || len(got.ProtoReflect().GetUnknown()) == 0 {
			t.Fatalf("decoded %v, want the chunk and the unknown field kept", &got)
		}
	})
	t.Run("not a capture response", func(t *testing.T) {
		wire, _ := proto.Marshal(&triagev1.CaptureRequest{Filter: "tcp"})
		var got triagev1.CaptureRequest
		if err := newCaptureCodec().Unmarshal(split(wire, 3), &got); err != nil || got.GetFilter() != "tcp" {
			t.Fatalf("decoded %v, %v", &got, err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		var got triagev1.CaptureResponse
		if err := newCaptureCodec().Unmarshal(split([]byte{0x12, 0x05, 0x0a, 0x09}, 2), &got); err == nil {
			t.Fatalf("a truncated chunk decoded as %v", &got)
		}
	})
}

// FuzzParseChunk: whatever parseChunk accepts, proto.Unmarshal decodes to
// the same chunk.
func FuzzParseChunk(f *testing.F) {
	for _, d := range [][]byte{nil, {1}, bytes.Repeat([]byte{7}, 300)} {
		wire, _ := proto.Marshal(&triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: d}}})
		f.Add(wire)
	}
	f.Add([]byte{0x12, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x12, 0x03, 0x0a, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		chunk, ok := parseChunk(b)
		if !ok {
			return
		}
		var m triagev1.CaptureResponse
		if err := proto.Unmarshal(b, &m); err != nil {
			t.Fatalf("parseChunk accepted what proto rejects: %v", err)
		}
		if m.GetChunk() == nil || !bytes.Equal(m.GetChunk().GetData(), chunk) || len(m.ProtoReflect().GetUnknown()) != 0 {
			t.Fatalf("parseChunk gave %x, proto %v", chunk, &m)
		}
	})
}
