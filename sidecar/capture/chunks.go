package capture

import "github.com/triage-sh/triage/sidecar/capability"

// chunkSize is the shared artifact chunk size (see capability.ChunkBytes).
const chunkSize = capability.ChunkBytes

// chunkSender collects the pcapng bytes and sends them as chunks of at most
// chunkSize. It holds at most one chunk; a slow client blocks send, which is
// gRPC's flow control reaching back to the packet queue.
type chunkSender struct {
	send  func([]byte) error
	buf   []byte
	total int64 // bytes sent
}

func (c *chunkSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if c.buf == nil {
			c.buf = make([]byte, 0, chunkSize)
		}
		k := min(len(p), chunkSize-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == chunkSize {
			if err := c.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// pending is the number of bytes not yet sent.
func (c *chunkSender) pending() int { return len(c.buf) }

// flush sends what is pending. The buffer is reused: gRPC encodes the
// message before Send returns, and does not keep it.
func (c *chunkSender) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	if err := c.send(c.buf); err != nil {
		return err
	}
	c.total += int64(len(c.buf))
	c.buf = c.buf[:0]
	return nil
}
