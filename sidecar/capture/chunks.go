package capture

import "github.com/triage-sh/triage/sidecar/capability"

// chunkSize is the shared artifact chunk size (see capability.ChunkBytes).
const chunkSize = capability.ChunkBytes

// chunker assembles the pcapng stream into chunks of chunkSize bytes and
// pushes each full one to the queue: enhanced packet blocks are written
// straight from the kernel ring into the chunk, the only copy of a packet's
// bytes in the sidecar before gRPC's. It is used by one goroutine at a
// time: the stream writer for the headers, the ring reader during the
// capture, the stream writer again for the statistics blocks once the
// reader has stopped.
type chunker struct {
	q       *chunkQueue
	cur     []byte // the chunk being filled; nil when none
	written int64  // bytes written since the start of the file
}

// Write implements io.Writer (for pcapgo's writer); it never fails.
func (c *chunker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if c.cur == nil {
			c.cur = c.q.buffer()
		}
		k := copy(c.cur[len(c.cur):cap(c.cur)], p)
		c.cur = c.cur[:len(c.cur)+k]
		p = p[k:]
		if len(c.cur) == cap(c.cur) {
			c.q.push(c.cur)
			c.cur = nil
		}
	}
	c.written += int64(n)
	return n, nil
}

// pending is the number of bytes in the chunk being filled.
func (c *chunker) pending() int { return len(c.cur) }

// flush queues the chunk being filled, if it holds anything.
func (c *chunker) flush() {
	if len(c.cur) > 0 {
		c.q.push(c.cur)
		c.cur = nil
	}
}
