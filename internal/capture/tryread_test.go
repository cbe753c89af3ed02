//go:build linux

package capture

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestTryReadPacket: it returns the packets of the blocks user space owns,
// gives each block back once read, and reports ok false at once when the
// next block still belongs to the kernel.
func TestTryReadPacket(t *testing.T) {
	const bs, nb, per, frame = 128 << 10, 4, 5, 60
	h := &Handle{ring: synthRing(bs, nb, per, frame), blockSize: bs, blockNr: nb, snap: 65535, fd: -1, efd: -1}
	setStatus := func(block int, s uint32) { *h.statusWord(block) = s }
	for i := range nb {
		setStatus(i, unix.TP_STATUS_KERNEL)
	}

	readAll := func() int {
		n := 0
		for {
			data, ci, ok, err := h.TryReadPacket()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return n
			}
			if len(data) != frame || ci.CaptureLength != frame || ci.InterfaceIndex != 1 {
				t.Fatalf("packet %d: %d bytes, %+v", n, len(data), ci)
			}
			n++
		}
	}
	for _, step := range []struct {
		ready []int // blocks handed to user space before reading
		want  int
	}{
		{nil, 0},
		{[]int{0, 1}, 2 * per},
		{nil, 0},
		{[]int{3}, 0}, // block 2 comes first
		{[]int{2}, 2 * per},
	} {
		for _, b := range step.ready {
			setStatus(b, unix.TP_STATUS_USER)
		}
		if got := readAll(); got != step.want {
			t.Fatalf("after handing over blocks %v: %d packets, want %d", step.ready, got, step.want)
		}
	}
	// Every block read went back to the kernel.
	for i := range nb {
		if got := *h.statusWord(i); got != unix.TP_STATUS_KERNEL {
			t.Errorf("block %d status %#x, want TP_STATUS_KERNEL", i, got)
		}
	}
	st, _ := h.Stats()
	if st.Delivered != 4*per {
		t.Errorf("Delivered %d, want %d", st.Delivered, 4*per)
	}
	h.closed.Store(true)
	if _, _, ok, err := h.TryReadPacket(); ok || err != ErrClosed {
		t.Errorf("after Close: ok %v, err %v; want ErrClosed", ok, err)
	}
}
