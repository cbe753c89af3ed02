package capture

import (
	"sync"
	"sync/atomic"
)

// chunkQueue holds the pcapng chunks assembled by the ring reader until the
// stream writer sends them. The reader admits a packet only while the
// queued chunks and the one being filled stay within the budget (see
// capturing.add), so memory is bounded: when a slow client lets the
// queue fill, new packets are refused and counted as stream drops, and the
// kernel ring keeps draining (kernel drops then mean the kernel, stream
// drops mean the client). Sent chunks come back to a free list, so a
// capture allocates its buffers once rather than per packet.
type chunkQueue struct {
	budget int
	queued atomic.Int64 // bytes in chunks pushed and not yet popped
	ready  chan struct{}

	mu     sync.Mutex
	chunks [][]byte
	head   int
	free   [][]byte
}

func newChunkQueue(budget int) *chunkQueue {
	return &chunkQueue{budget: budget, ready: make(chan struct{}, 1)}
}

// maxFree bounds the free list: a queue at its budget and the chunks on
// their way in and out.
func (q *chunkQueue) maxFree() int { return q.budget/chunkSize + 2 }

// buffer returns an empty buffer of capacity chunkSize.
func (q *chunkQueue) buffer() []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := len(q.free); n > 0 {
		b := q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
		return b
	}
	return make([]byte, 0, chunkSize)
}

// recycle gives back a buffer popped and sent.
func (q *chunkQueue) recycle(b []byte) {
	if cap(b) != chunkSize {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.free) < q.maxFree() {
		q.free = append(q.free, b[:0])
	}
}

// push queues a chunk and wakes the writer. It never refuses: admission is
// decided per packet, before the packet is written into a chunk.
func (q *chunkQueue) push(b []byte) {
	q.mu.Lock()
	q.chunks = append(q.chunks, b)
	q.queued.Add(int64(len(b)))
	q.mu.Unlock()
	q.wake()
}

// wake makes a waiting writer look at the queue.
func (q *chunkQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop takes the oldest chunk, if any.
func (q *chunkQueue) pop() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.chunks) {
		return nil, false
	}
	b := q.chunks[q.head]
	q.chunks[q.head] = nil
	q.head++
	q.queued.Add(-int64(len(b)))
	if q.head == len(q.chunks) {
		q.chunks, q.head = q.chunks[:0], 0
	} else if q.head > 64 && q.head*2 > len(q.chunks) {
		n := copy(q.chunks, q.chunks[q.head:])
		clear(q.chunks[n:])
		q.chunks, q.head = q.chunks[:n], 0
	}
	return b, true
}
