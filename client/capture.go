package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"google.golang.org/grpc"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Capture streams a packet capture (pcapng) into w. Only whole pcapng
// blocks reach w (see BlockWriter), so whatever ends the stream — the
// server's limits, StopCapture, a cancelled ctx, a broken connection — w
// holds a file that tcpdump and Wireshark read. When req has no duration,
// the server's maximum bounds the call instead of the client's timeout.
//
// The call asks for the content-subtype "triage-capture" (protobuf on the
// wire, under which the sidecar sends chunks without a marshalling copy)
// and decodes chunks into one reused buffer (see captureCodec).
func (c *Client) Capture(ctx context.Context, req *triagev1.CaptureRequest, w io.Writer, opts ...ArtifactOption) (*Artifact, error) {
	const op = "capture"
	var cancel context.CancelFunc
	if d := req.GetDuration().AsDuration(); d > 0 {
		ctx, cancel = c.callFor(ctx, d)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	stream, err := c.capture.Capture(ctx, req, grpc.ForceCodecV2(newCaptureCodec()), grpc.CallContentSubtype(captureContentSubtype))
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

// pcapng block types BlockWriter looks at.
const (
	blockSHB        = 0x0A0D0D0A // section header: carries the byte order magic
	blockSimplePkt  = 3
	blockEnhanced   = 6
	byteOrderMagic  = 0x1A2B3C4D // as little-endian; 0x4D3C2B1A as big-endian
	blockHeaderSize = 12         // type, total length, and the SHB's byte order magic
)

// BlockWriter passes a pcapng stream to w in whole blocks and holds back a
// block until its last byte has arrived, so w never ends inside a block.
// The whole blocks of one Write go to w in one call (a chunk of small
// packets is one write, not one per packet); only a block split across
// Writes is copied. It counts the enhanced and simple packet blocks it
// passed. It holds at most one block (at most 1 MiB).
type BlockWriter struct {
	w       io.Writer
	buf     []byte // the start of a block not yet complete
	written int64
	packets int64
	order   binary.ByteOrder // of the current section
	err     error
}

// NewBlockWriter returns a BlockWriter writing to w.
func NewBlockWriter(w io.Writer) *BlockWriter { return &BlockWriter{w: w} }

// Write implements io.Writer. It fails for good on the first malformed
// block or failed write of w, after passing on the whole blocks before it.
func (b *BlockWriter) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n := len(p)
	if len(b.buf) > 0 {
		// Complete the block held back: its header first, then the rest.
		if len(b.buf) < blockHeaderSize {
			k := min(blockHeaderSize-len(b.buf), len(p))
			b.buf = append(b.buf, p[:k]...)
			p = p[k:]
			if len(b.buf) < blockHeaderSize {
				return n, nil
			}
		}
		size, err := b.header(b.buf)
		if err != nil {
			return 0, b.fail(err)
		}
		k := min(size-len(b.buf), len(p))
		b.buf = append(b.buf, p[:k]...)
		p = p[k:]
		if len(b.buf) < size {
			return n, nil
		}
		b.countBlock(b.buf)
		if err := b.pass(b.buf); err != nil {
			return 0, err
		}
		b.buf = b.buf[:0]
	}
	// The whole blocks at the start of p go to w at once.
	whole := 0
	var parseErr error
	for len(p)-whole >= blockHeaderSize {
		size, err := b.header(p[whole:])
		if err != nil {
			parseErr = err
			break
		}
		if len(p)-whole < size {
			break
		}
		b.countBlock(p[whole : whole+size])
		whole += size
	}
	if whole > 0 {
		if err := b.pass(p[:whole]); err != nil {
			return 0, err
		}
	}
	if parseErr != nil {
		return 0, b.fail(parseErr)
	}
	b.buf = append(b.buf, p[whole:]...)
	return n, nil
}

// header reads the length of the block starting at blk (at least
// blockHeaderSize bytes) and, for a section header, the section's byte
// order (kept for the blocks that follow).
func (b *BlockWriter) header(blk []byte) (size int, err error) {
	// The SHB's type reads the same in both byte orders.
	if binary.LittleEndian.Uint32(blk[0:4]) == blockSHB {
		switch binary.LittleEndian.Uint32(blk[8:12]) {
		case byteOrderMagic:
			b.order = binary.LittleEndian
		case 0x4D3C2B1A:
			b.order = binary.BigEndian
		default:
			return 0, fmt.Errorf("%w: a pcapng section header without the byte order magic", ErrArtifactProtocol)
		}
	}
	if b.order == nil {
		return 0, fmt.Errorf("%w: not a pcapng stream (it does not start with a section header block)", ErrArtifactProtocol)
	}
	size = int(b.order.Uint32(blk[4:8]))
	if size < blockHeaderSize || size%4 != 0 || size > maxBlock {
		return 0, fmt.Errorf("%w: a pcapng block of %d bytes", ErrArtifactProtocol, size)
	}
	return size, nil
}

// countBlock counts blk (one whole block) if it is a packet block.
func (b *BlockWriter) countBlock(blk []byte) {
	if t := b.order.Uint32(blk[0:4]); t == blockEnhanced || t == blockSimplePkt {
		b.packets++
	}
}

// pass writes whole blocks to w.
func (b *BlockWriter) pass(blocks []byte) error {
	n, err := b.w.Write(blocks)
	b.written += int64(n)
	if err == nil && n < len(blocks) {
		err = io.ErrShortWrite
	}
	if err != nil {
		b.err = err
	}
	return err
}

func (b *BlockWriter) fail(err error) error {
	b.err = err
	b.buf = nil
	return err
}

// Written is the number of bytes passed to w: whole blocks only.
func (b *BlockWriter) Written() int64 { return b.written }

// Packets is the number of packet blocks passed to w.
func (b *BlockWriter) Packets() int64 { return b.packets }

// Partial is the number of bytes held back: a block not yet complete.
func (b *BlockWriter) Partial() int { return len(b.buf) }
