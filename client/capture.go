package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Capture streams a packet capture (pcapng) into w. Only whole pcapng
// blocks reach w (see BlockWriter), so whatever ends the stream — the
// server's limits, StopCapture, a cancelled ctx, a broken connection — w
// holds a file that tcpdump and Wireshark read. When req has no duration,
// the server's maximum bounds the call instead of the client's timeout.
func (c *Client) Capture(ctx context.Context, req *triagev1.CaptureRequest, w io.Writer, opts ...ArtifactOption) (*Artifact, error) {
	const op = "capture"
	var cancel context.CancelFunc
	if d := req.GetDuration().AsDuration(); d > 0 {
		ctx, cancel = c.callFor(ctx, d)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	stream, err := c.capture.Capture(ctx, req)
	if err != nil {
		return nil, c.wrap(op, err)
	}
	bw := NewBlockWriter(w)
	a, err := ReadArtifact(stream, bw, opts...)
	if a != nil {
		a.Written = bw.Written()
	}
	if err == nil && bw.Partial() > 0 {
		err = fmt.Errorf("%w: the stream ended inside a pcapng block (%d bytes left out)", ErrArtifactProtocol, bw.Partial())
	}
	return a, c.wrap(op, err)
}

// StopCapture asks the server to end the capture id cleanly: its stream
// gets the file's statistics blocks and a trailer with stop reason "client".
func (c *Client) StopCapture(ctx context.Context, id string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.capture.StopCapture(ctx, &triagev1.StopCaptureRequest{CaptureId: id})
	return c.wrap("stop capture", err)
}

// ListInterfaces lists the interfaces of the pod's network namespace and
// whether capture is available.
func (c *Client) ListInterfaces(ctx context.Context) (*triagev1.ListInterfacesResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.capture.ListInterfaces(ctx, &triagev1.ListInterfacesRequest{})
	return resp, c.wrap("list interfaces", err)
}

// maxBlock bounds one pcapng block: a 262144-byte packet plus its
// header and options, with room to spare.
const maxBlock = 1 << 20

// BlockWriter passes a pcapng stream to w one whole block at a time and
// holds back a block until its last byte has arrived, so w never ends
// inside a block. It counts the enhanced packet blocks it passed.
// It holds at most one block (at most 1 MiB).
type BlockWriter struct {
	w       io.Writer
	buf     []byte
	written int64
	packets int64
	order   binary.ByteOrder
	err     error
}

// NewBlockWriter returns a BlockWriter writing to w.
func NewBlockWriter(w io.Writer) *BlockWriter { return &BlockWriter{w: w} }

// Write implements io.Writer.
func (b *BlockWriter) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	b.buf = append(b.buf, p...)
	for len(b.buf) >= 12 {
		if b.order == nil {
			// A section header block carries the byte order magic.
			switch binary.LittleEndian.Uint32(b.buf[8:12]) {
			case 0x1A2B3C4D:
				b.order = binary.LittleEndian
			case 0x4D3C2B1A:
				b.order = binary.BigEndian
			default:
				b.err = fmt.Errorf("%w: not a pcapng stream", ErrArtifactProtocol)
				return 0, b.err
			}
		}
		typ := b.order.Uint32(b.buf[0:4])
		n := int(b.order.Uint32(b.buf[4:8]))
		if n < 12 || n%4 != 0 || n > maxBlock {
			b.err = fmt.Errorf("%w: a pcapng block of %d bytes", ErrArtifactProtocol, n)
			return 0, b.err
		}
		if len(b.buf) < n {
			break
		}
		if _, err := b.w.Write(b.buf[:n]); err != nil {
			b.err = err
			return 0, err
		}
		b.written += int64(n)
		if typ == 6 || typ == 3 { // enhanced or simple packet block
			b.packets++
		}
		b.buf = b.buf[n:]
	}
	if len(b.buf) == 0 {
		b.buf = nil
	} else if cap(b.buf) > 2*maxBlock {
		b.buf = append([]byte(nil), b.buf...)
	}
	return len(p), nil
}

// Written is the number of bytes passed to w: whole blocks only.
func (b *BlockWriter) Written() int64 { return b.written }

// Packets is the number of packet blocks passed to w.
func (b *BlockWriter) Packets() int64 { return b.packets }

// Partial is the number of bytes held back: a block not yet complete.
func (b *BlockWriter) Partial() int { return len(b.buf) }
