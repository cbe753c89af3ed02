//go:build linux

package capture

import (
	"context"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// synthRing lays out blocks of packets as the kernel does (SOCK_RAW,
// Ethernet: tp_mac 82), for benchmarking the parsing alone.
func synthRing(blockSize, blocks, perBlock, frameLen int) []byte {
	r := make([]byte, blockSize*blocks)
	for b := range blocks {
		base := b * blockSize
		ne := binary.NativeEndian
		ne.PutUint32(r[base+blkNumPktsOff:], uint32(perBlock))
		ne.PutUint32(r[base+blkFirstPktOff:], blkHeaderLen)
		off := base + blkHeaderLen
		step := (82 + frameLen + 15) &^ 15
		for p := range perBlock {
			if p < perBlock-1 {
				ne.PutUint32(r[off+pktNextOff:], uint32(step))
			}
			ne.PutUint32(r[off+pktSecOff:], 1700000000)
			ne.PutUint32(r[off+pktSnaplenOff:], uint32(frameLen))
			ne.PutUint32(r[off+pktLenOff:], uint32(frameLen))
			ne.PutUint16(r[off+pktMacOff:], 82)
			ne.PutUint32(r[off+sllIfindex:], 1)
			off += step
		}
	}
	return r
}

func BenchmarkRingParse(b *testing.B) {
	const bs, nb, per = 128 << 10, 16, 800
	h := &Handle{ring: synthRing(bs, nb, per, 60), blockSize: bs, blockNr: nb, snap: 65535, fd: -1, efd: -1}
	setUser := func() {
		h.cur, h.held, h.left = 0, false, 0
		for i := range nb {
			*h.statusWord(i) = unix.TP_STATUS_USER
		}
	}
	setUser()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	for i := range b.N {
		if i%(nb*per) == 0 && i > 0 {
			b.StopTimer()
			setUser()
			b.StartTimer()
		}
		if _, _, err := h.ReadPacket(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
