package capture

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/triage-sh/triage/internal/capture"
)

func TestChunkerSplitsIntoChunks(t *testing.T) {
	for _, sizes := range [][]int{
		{1},
		{chunkSize},
		{chunkSize - 1, 2},
		{3 * chunkSize},
		{100, 65536, 7, 262144, 1},
	} {
		q := newChunkQueue(64 << 20)
		c := &chunker{q: q}
		var want []byte
		for i, n := range sizes {
			p := bytes.Repeat([]byte{byte(i + 1)}, n)
			if k, err := c.Write(p); k != n || err != nil {
				t.Fatalf("Write(%d) = %d, %v", n, k, err)
			}
			want = append(want, p...)
		}
		if c.written != int64(len(want)) || c.pending() != len(want)%chunkSize {
			t.Fatalf("sizes %v: written %d, pending %d", sizes, c.written, c.pending())
		}
		c.flush()
		if c.pending() != 0 {
			t.Fatalf("sizes %v: %d pending after flush", sizes, c.pending())
		}
		var got []byte
		for {
			b, ok := q.pop()
			if !ok {
				break
			}
			if len(b) > chunkSize || (len(got)+len(b) < len(want) && len(b) != chunkSize) {
				t.Fatalf("sizes %v: a chunk of %d bytes before the last", sizes, len(b))
			}
			got = append(got, b...)
			q.recycle(b)
		}
		if !bytes.Equal(got, want) || q.queued.Load() != 0 {
			t.Fatalf("sizes %v: chunks hold %d bytes (queued %d), want the %d written", sizes, len(got), q.queued.Load(), len(want))
		}
	}
}

func TestChunkQueueRecycles(t *testing.T) {
	q := newChunkQueue(256 << 10)
	var bufs [][]byte
	for range 3 * q.maxFree() {
		bufs = append(bufs, q.buffer())
	}
	for _, b := range bufs {
		q.recycle(append(b, 1, 2, 3))
	}
	q.recycle(make([]byte, 10)) // not one of ours: not kept
	if len(q.free) != q.maxFree() {
		t.Fatalf("%d buffers kept, want at most %d", len(q.free), q.maxFree())
	}
	if b := q.buffer(); len(b) != 0 || cap(b) != chunkSize {
		t.Fatalf("a recycled buffer has length %d, capacity %d", len(b), cap(b))
	}
}

// epbs parses the enhanced packet blocks of a pcapng byte stream made of
// EPBs only, and returns their packet lengths.
func epbs(t *testing.T, b []byte) []int {
	t.Helper()
	var lens []int
	for len(b) > 0 {
		if len(b) < 32 || binary.LittleEndian.Uint32(b) != 6 {
			t.Fatalf("not an enhanced packet block: % x", b[:min(len(b), 16)])
		}
		total := int(binary.LittleEndian.Uint32(b[4:]))
		if total > len(b) || binary.LittleEndian.Uint32(b[total-4:]) != uint32(total) {
			t.Fatalf("block of %d bytes with %d left", total, len(b))
		}
		lens = append(lens, int(binary.LittleEndian.Uint32(b[20:])))
		b = b[total:]
	}
	return lens
}

// TestAddAdmission: with nobody sending, packets are admitted until the
// queued chunks and the one being filled reach the budget, then counted as
// stream drops; the limits stop the capture with their reason.
func TestAddAdmission(t *testing.T) {
	for _, tc := range []struct {
		name       string
		budget     int
		size       int
		n          int
		maxBytes   int64
		maxPackets int64
		wantReason string
		wantKept   int
	}{
		{name: "under budget", budget: 1 << 20, size: 1000, n: 100, maxBytes: 1 << 30, wantKept: 100},
		{name: "budget fills", budget: 256 << 10, size: 65535, n: 20, maxBytes: 1 << 30, wantKept: 3}, // 4 blocks of 65568 exceed 256 KiB
		{name: "one packet over the budget still goes into an empty queue", budget: 256 << 10, size: 262144, n: 2, maxBytes: 1 << 30, wantKept: 1},
		{name: "max packets", budget: 1 << 20, size: 100, n: 50, maxBytes: 1 << 30, maxPackets: 10, wantReason: stopCount, wantKept: 10},
		{name: "max bytes", budget: 1 << 20, size: 1000, n: 50, maxBytes: 10 * 1032, wantReason: stopBytes, wantKept: 10 - 1}, // room kept for the statistics block
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newChunkQueue(tc.budget)
			c := &capturing{
				p:      &plan{linkType: capture.LinkTypeEN10MB, maxBytes: tc.maxBytes, maxPackets: tc.maxPackets},
				q:      q,
				asm:    &chunker{q: q},
				perIDB: []uint64{0},
			}
			data := bytes.Repeat([]byte{0xab}, tc.size)
			reason, tries := "", 0
			for range tc.n {
				tries++
				r, err := c.add(data, capture.CaptureInfo{Timestamp: time.Unix(1, 2), Length: tc.size, CaptureLength: tc.size})
				if err != nil {
					t.Fatal(err)
				}
				if r != "" {
					reason = r
					break
				}
			}
			if reason != tc.wantReason || int(c.packets.Load()) != tc.wantKept {
				t.Fatalf("reason %q, %d packets kept; want %q, %d", reason, c.packets.Load(), tc.wantReason, tc.wantKept)
			}
			kept, drops := int(c.packets.Load()), int(c.streamDrops.Load())
			if reason == "" && kept+drops != tries {
				t.Fatalf("%d kept + %d dropped != %d offered", kept, drops, tries)
			}
			if held := int(q.queued.Load()) + c.asm.pending(); kept > 1 && held > tc.budget {
				t.Fatalf("%d bytes held over the %d budget", held, tc.budget)
			}
			c.asm.flush()
			var file []byte
			for b, ok := q.pop(); ok; b, ok = q.pop() {
				file = append(file, b...)
			}
			lens := epbs(t, file)
			if len(lens) != kept || int64(len(file)) != c.asm.written {
				t.Fatalf("the chunks hold %d packets in %d bytes; %d kept, %d written", len(lens), len(file), kept, c.asm.written)
			}
			for _, l := range lens {
				if l != tc.size {
					t.Fatalf("a packet of %d bytes, want %d", l, tc.size)
				}
			}
		})
	}
}
