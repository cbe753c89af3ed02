package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/metadata"

	"github.com/triage-sh/triage/client"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	sidecarcapture "github.com/triage-sh/triage/sidecar/capture"
)

// byteOrder is binary.LittleEndian or binary.BigEndian.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// block builds one pcapng block of type typ with body bytes of payload
// (padded to 4), in byte order o.
func block(o byteOrder, typ uint32, body []byte) []byte {
	pad := (4 - len(body)%4) % 4
	n := 12 + len(body) + pad
	b := make([]byte, 0, n)
	b = o.AppendUint32(b, typ)
	b = o.AppendUint32(b, uint32(n))
	b = append(b, body...)
	b = append(b, make([]byte, pad)...)
	return o.AppendUint32(b, uint32(n))
}

// shb is a section header block (no options) in byte order o.
func shb(o byteOrder) []byte {
	body := o.AppendUint32(nil, 0x1A2B3C4D)
	body = o.AppendUint16(body, 1)
	body = o.AppendUint16(body, 0)
	body = o.AppendUint64(body, ^uint64(0))
	return block(o, 0x0A0D0D0A, body)
}

// epb is an enhanced packet block carrying n bytes of packet.
func epb(o byteOrder, n int) []byte {
	body := make([]byte, 20, 20+n)
	o.PutUint32(body[12:], uint32(n))
	o.PutUint32(body[16:], uint32(n))
	for i := range n {
		body = append(body, byte(i))
	}
	return block(o, 6, body)
}

// stream is a pcapng file: a little-endian section with an interface and
// packets of several sizes, then a big-endian section with a simple packet
// block, so byte order changes mid-stream.
func stream() (file []byte, packets int64) {
	le, be := binary.LittleEndian, binary.BigEndian
	var b []byte
	b = append(b, shb(le)...)
	b = append(b, block(le, 1, make([]byte, 8))...) // interface description
	for _, n := range []int{0, 1, 3, 64, 1500, 65535, 200_000} {
		b = append(b, epb(le, n)...)
	}
	b = append(b, block(le, 5, make([]byte, 40))...) // interface statistics
	b = append(b, shb(be)...)
	b = append(b, block(be, 1, make([]byte, 8))...)
	b = append(b, epb(be, 77)...)
	b = append(b, block(be, 3, make([]byte, 12))...) // simple packet block
	return b, 9
}

// blockChecker is a writer that fails the test unless every write is a
// sequence of whole blocks (the promise BlockWriter makes to its writer).
type blockChecker struct {
	t      *testing.T
	order  binary.ByteOrder
	out    bytes.Buffer
	writes int
}

func (c *blockChecker) Write(p []byte) (int, error) {
	c.t.Helper()
	c.writes++
	for q := p; len(q) > 0; {
		if len(q) < 12 {
			c.t.Fatalf("write %d ends with %d bytes of a block", c.writes, len(q))
		}
		if binary.LittleEndian.Uint32(q) == 0x0A0D0D0A {
			c.order = binary.LittleEndian
			if binary.LittleEndian.Uint32(q[8:]) != 0x1A2B3C4D {
				c.order = binary.BigEndian
			}
		}
		n := int(c.order.Uint32(q[4:]))
		if n < 12 || n > len(q) || c.order.Uint32(q[n-4:]) != uint32(n) {
			c.t.Fatalf("write %d: a block of %d bytes does not fit the %d bytes left or lacks its trailing length", c.writes, n, len(q))
		}
		q = q[n:]
	}
	return c.out.Write(p)
}

func TestBlockWriterSplits(t *testing.T) {
	file, packets := stream()
	splits := map[string]func(i int) int{
		"one write":      func(int) int { return len(file) },
		"byte by byte":   func(int) int { return 1 },
		"7 bytes":        func(int) int { return 7 },
		"header split":   func(i int) int { return []int{5, 11, 13}[i%3] },
		"32 KiB chunks":  func(int) int { return 32 << 10 },
		"100 KiB chunks": func(int) int { return 100 << 10 },
	}
	for name, next := range splits {
		t.Run(name, func(t *testing.T) {
			c := &blockChecker{t: t}
			bw := client.NewBlockWriter(c)
			for i, rest := 0, file; len(rest) > 0; i++ {
				k := min(next(i), len(rest))
				n, err := bw.Write(rest[:k])
				if err != nil || n != k {
					t.Fatalf("Write(%d bytes) = %d, %v", k, n, err)
				}
				rest = rest[k:]
				if got := int64(c.out.Len()) + int64(bw.Partial()); got != int64(len(file)-len(rest)) {
					t.Fatalf("after %d bytes: %d passed + %d held back", len(file)-len(rest), c.out.Len(), bw.Partial())
				}
			}
			if !bytes.Equal(c.out.Bytes(), file) {
				t.Fatalf("passed %d bytes that differ from the %d-byte stream", c.out.Len(), len(file))
			}
			if bw.Partial() != 0 || bw.Written() != int64(len(file)) || bw.Packets() != packets {
				t.Fatalf("partial %d, written %d, packets %d; want 0, %d, %d", bw.Partial(), bw.Written(), bw.Packets(), len(file), packets)
			}
		})
	}
}

// TestBlockWriterBatches: the whole blocks of one Write reach the writer in
// one call.
func TestBlockWriterBatches(t *testing.T) {
	le := binary.LittleEndian
	var file []byte
	file = append(file, shb(le)...)
	for range 100 {
		file = append(file, epb(le, 60)...)
	}
	c := &blockChecker{t: t}
	bw := client.NewBlockWriter(c)
	half := len(file)/2 + 3 // inside a block
	for _, p := range [][]byte{file[:half], file[half:]} {
		if _, err := bw.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	// The first write's whole blocks, the block split by the boundary, the
	// second write's whole blocks.
	if c.writes != 3 || !bytes.Equal(c.out.Bytes(), file) || bw.Packets() != 100 {
		t.Fatalf("%d writes, %d packets, equal %v; want 3 writes, 100 packets, equal", c.writes, bw.Packets(), bytes.Equal(c.out.Bytes(), file))
	}
}

func TestBlockWriterHoldsBackPartialBlock(t *testing.T) {
	file, _ := stream()
	for _, cut := range []int{1, 11, 12, 30, len(file) - 1} {
		c := &blockChecker{t: t}
		bw := client.NewBlockWriter(c)
		if _, err := bw.Write(file[:cut]); err != nil {
			t.Fatal(err)
		}
		if bw.Partial() == 0 || int(bw.Written())+bw.Partial() != cut || !bytes.Equal(c.out.Bytes(), file[:bw.Written()]) {
			t.Errorf("cut at %d: written %d, partial %d", cut, bw.Written(), bw.Partial())
		}
	}
}

type brokenWriter struct{ err error }

func (f brokenWriter) Write([]byte) (int, error) { return 0, f.err }

func TestBlockWriterErrors(t *testing.T) {
	le := binary.LittleEndian
	valid := shb(le)
	withLen := func(n uint32) []byte {
		b := append([]byte(nil), valid...)
		return append(b, le.AppendUint32(le.AppendUint32(make([]byte, 0, 12), 6), n)...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want int // bytes passed before the error
	}{
		{"not pcapng", []byte("GET / HTTP/1.1\r\n\r\n"), 0},
		{"no byte order magic", block(le, 0x0A0D0D0A, make([]byte, 16)), 0},
		{"block shorter than its header", withLen(8), len(valid)},
		{"length not a multiple of 4", withLen(30), len(valid)},
		{"block over 1 MiB", withLen(2 << 20), len(valid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			bw := client.NewBlockWriter(&out)
			in := append(tc.in, make([]byte, 12)...) // enough for the bad header to be read
			_, err := bw.Write(in)
			if !errors.Is(err, client.ErrArtifactProtocol) {
				t.Fatalf("err = %v, want ErrArtifactProtocol", err)
			}
			if out.Len() != tc.want || bw.Written() != int64(tc.want) {
				t.Errorf("passed %d bytes (written %d), want %d", out.Len(), bw.Written(), tc.want)
			}
			if _, again := bw.Write(valid); !errors.Is(again, client.ErrArtifactProtocol) {
				t.Errorf("a later write was accepted: %v", again)
			}
		})
	}
	t.Run("writer fails", func(t *testing.T) {
		boom := errors.New("disk full")
		bw := client.NewBlockWriter(brokenWriter{boom})
		if _, err := bw.Write(valid); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
		if _, err := bw.Write(valid); !errors.Is(err, boom) {
			t.Fatalf("second write: err = %v, want %v", err, boom)
		}
	})
}

// FuzzBlockWriter: whatever the bytes and however they are split, the
// writer receives a prefix of them in whole blocks, and what it received
// plus what is held back is everything given, until an error.
func FuzzBlockWriter(f *testing.F) {
	file, _ := stream()
	f.Add(file[:700], uint64(1))
	f.Add(file[:300], uint64(7))
	f.Add([]byte("not a pcapng stream at all"), uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		var out bytes.Buffer
		bw := client.NewBlockWriter(&out)
		r := rand.New(rand.NewPCG(seed, seed>>1))
		given := 0
		for rest := data; len(rest) > 0; {
			k := min(1+r.IntN(64), len(rest))
			_, err := bw.Write(rest[:k])
			if err != nil {
				if !errors.Is(err, client.ErrArtifactProtocol) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			given += k
			rest = rest[k:]
			if out.Len()+bw.Partial() != given {
				t.Fatalf("%d passed + %d held back != %d given", out.Len(), bw.Partial(), given)
			}
		}
		if !bytes.HasPrefix(data, out.Bytes()) || bw.Written() != int64(out.Len()) {
			t.Fatalf("passed %d bytes that are not a prefix of the input (written %d)", out.Len(), bw.Written())
		}
		// What was passed re-parses as whole blocks.
		var again bytes.Buffer
		bw2 := client.NewBlockWriter(&again)
		if _, err := bw2.Write(out.Bytes()); err != nil || bw2.Partial() != 0 || bw2.Packets() != bw.Packets() {
			t.Fatalf("passed bytes do not re-parse as whole blocks: %v, partial %d, packets %d vs %d", err, bw2.Partial(), bw2.Packets(), bw.Packets())
		}
	})
}

// scriptedCapture serves one capture: a header, file split into chunks of
// chunk bytes, a trailer; it records the content-type the call came with.
type scriptedCapture struct {
	triagev1.UnimplementedCaptureServiceServer
	file        []byte
	chunk       int
	contentType chan []string
}

func (s *scriptedCapture) Capture(_ *triagev1.CaptureRequest, st grpc.ServerStreamingServer[triagev1.CaptureResponse]) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	s.contentType <- md.Get("content-type")
	if err := st.Send(&triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Header{Header: &triagev1.ArtifactHeader{MediaType: "application/x-pcapng"}}}); err != nil {
		return err
	}
	for b := s.file; len(b) > 0; {
		k := min(s.chunk, len(b))
		if err := st.Send(&triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: b[:k]}}}); err != nil {
			return err
		}
		b = b[k:]
	}
	return st.Send(&triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Trailer{Trailer: &triagev1.ArtifactTrailer{Bytes: uint64(len(s.file)), StopReason: "count"}}})
}

// TestCaptureOverGRPC: a capture streamed by a server that knows nothing
// of the triage-capture codec arrives whole through the client's codec,
// whatever the chunk size. This test binary links the sidecar, which
// registers that codec, so the server is forced onto the proto codec, as
// an older sidecar falls back to it.
func TestCaptureOverGRPC(t *testing.T) {
	if sidecarcapture.ContentSubtype != "triage-capture" {
		t.Fatalf("the sidecar's codec is registered as %q, not the triage-capture the client asks for", sidecarcapture.ContentSubtype)
	}
	file, _ := stream()
	for _, chunk := range []int{1 << 10, 32<<10 - 256, 64 << 10} {
		srv := &scriptedCapture{file: file, chunk: chunk, contentType: make(chan []string, 1)}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer(grpc.ForceServerCodecV2(encoding.GetCodecV2(proto.Name)))
		triagev1.RegisterCaptureServiceServer(gs, srv)
		go gs.Serve(l)
		c := dial(t, client.Options{Addr: l.Addr().String(), Insecure: true})
		var out bytes.Buffer
		art, err := c.Capture(context.Background(), &triagev1.CaptureRequest{}, &out)
		gs.Stop()
		if err != nil {
			t.Fatalf("chunks of %d: %v", chunk, err)
		}
		if !bytes.Equal(out.Bytes(), file) || art.Written != int64(len(file)) {
			t.Fatalf("chunks of %d: got %d bytes (written %d), want the %d-byte file", chunk, out.Len(), art.Written, len(file))
		}
		if ct := <-srv.contentType; len(ct) != 1 || ct[0] != "application/grpc+triage-capture" {
			t.Fatalf("content-type %q, want application/grpc+triage-capture", ct)
		}
	}
}
