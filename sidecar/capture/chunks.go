package capture

// chunkSize is the artifact convention's largest chunk.
const chunkSize = 64 << 10

// chunkSender collects the pcapng bytes and sends them as chunks of at most
// 64 KiB. It holds at most one chunk; a slow client blocks send, which is
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

// flush sends what is pending. The sent slice is not reused: gRPC may still
// hold it after Send returns.
func (c *chunkSender) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	b := c.buf
	c.buf = nil
	if err := c.send(b); err != nil {
		return err
	}
	c.total += int64(len(b))
	return nil
}
