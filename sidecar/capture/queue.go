package capture

import (
	"sync"

	"github.com/triage-sh/triage/internal/capture"
)

// packet is one captured packet, copied out of the kernel ring.
type packet struct {
	data []byte
	ci   capture.CaptureInfo
}

// queueOverhead is what a queued packet costs beyond its bytes.
const queueOverhead = 64

// queue holds packets between the ring reader and the stream writer. It is
// bounded in bytes: when a slow client lets it fill, new packets are refused
// and counted, so memory stays bounded and the kernel ring keeps draining
// (kernel drops then mean the kernel, stream drops mean the client).
type queue struct {
	mu      sync.Mutex
	items   []packet
	head    int
	bytes   int
	budget  int
	dropped uint64
	closed  bool
	ready   chan struct{}
	slab    []byte // packets are carved from slabs: one allocation per slabSize, not per packet
}

// slabSize is the allocation unit for queued packets.
const slabSize = 256 << 10

func newQueue(budget int) *queue {
	return &queue{budget: budget, ready: make(chan struct{}, 1)}
}

// push copies data into the queue; it reports false (and counts a drop)
// when the queue is full.
func (q *queue) push(data []byte, ci capture.CaptureInfo) bool {
	cost := len(data) + queueOverhead
	q.mu.Lock()
	if q.bytes+cost > q.budget && q.bytes > 0 {
		q.dropped++
		q.mu.Unlock()
		return false
	}
	q.bytes += cost
	q.items = append(q.items, packet{data: q.copyData(data), ci: ci})
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// copyData copies data into the current slab (a new one when it is full;
// the old one is collected once its packets have been written).
func (q *queue) copyData(data []byte) []byte {
	if len(data) > slabSize/4 {
		return append([]byte(nil), data...)
	}
	if len(q.slab)+len(data) > cap(q.slab) {
		q.slab = make([]byte, 0, slabSize)
	}
	n := len(q.slab)
	q.slab = append(q.slab, data...)
	return q.slab[n:len(q.slab):len(q.slab)]
}

// pop takes the oldest packet, if any.
func (q *queue) pop() (packet, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return packet{}, false
	}
	p := q.items[q.head]
	q.items[q.head] = packet{}
	q.head++
	q.bytes -= len(p.data) + queueOverhead
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return p, true
}

// drops is the number of packets refused because the queue was full.
func (q *queue) drops() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// close wakes a waiting consumer for good.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
