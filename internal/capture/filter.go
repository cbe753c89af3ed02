//go:build linux

package capture

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Classic BPF encoding (include/uapi/linux/filter.h, bpf_common.h).
const (
	bpfClassMask = 0x07
	bpfLD        = 0x00
	bpfLDX       = 0x01
	bpfALU       = 0x04
	bpfJMP       = 0x05
	bpfRET       = 0x06

	bpfSizeMask = 0x18
	bpfW        = 0x00
	bpfH        = 0x08
	bpfB        = 0x10

	bpfModeMask = 0xe0
	bpfIMM      = 0x00
	bpfABS      = 0x20
	bpfIND      = 0x40
	bpfLEN      = 0x80
	bpfMSH      = 0xa0

	bpfJA   = 0x00 // BPF_JMP|BPF_JA is op 0x05
	bpfOpJA = bpfJMP | bpfJA
	bpfAddK = bpfALU // add #k (BPF_ALU|BPF_ADD|BPF_K, both 0)
	bpfRetK = bpfRET // ret #k (BPF_RET|BPF_K)

	// Ancillary loads: SKF_AD_OFF + SKF_AD_*.
	skfAdOff      = 0xfffff000 // uint32(-0x1000)
	skfAdProtocol = skfAdOff + 0
	skfAdPkttype  = skfAdOff + 4
	skfAdIfindex  = skfAdOff + 8
	skfAdHatype   = skfAdOff + 28

	maxInsns = 4096 // BPF_MAXINSNS
)

// program is what Open attaches.
type program struct {
	kernel []bpf.RawInstruction
	// user is the filter as given, when the kernel cannot run it (cooked
	// only); the kernel then keeps whole packets.
	user *bpf.VM
	// kernelSnap is the most bytes the kernel stores per packet (without
	// the SLL2 header, which user space adds); it sizes the ring's blocks.
	kernelSnap int
}

// buildProgram turns the caller's filter into the program attached to the
// socket: prefix (direction, loopback duplicates) followed by the filter,
// with its return values capped at snap and, for "any" (cooked), its loads
// rewritten from SLL2 offsets to what a SOCK_DGRAM socket's filter sees.
func buildProgram(filter []bpf.RawInstruction, cooked bool, snap int, prefix []bpf.Instruction) (program, error) {
	p := program{kernelSnap: snap}
	var body []bpf.RawInstruction
	switch {
	case len(filter) == 0:
		body = []bpf.RawInstruction{{Op: bpfRetK, K: retValue(uint32(snap), snap, cooked)}}
	case cooked:
		if rw, ok := rewriteSLL2(filter, snap); ok {
			body = rw
			break
		}
		insns, ok := bpf.Disassemble(filter)
		if !ok {
			return p, errors.New("capture: the filter has instructions golang.org/x/net/bpf cannot decode, and loads SLL2 header fields the kernel cannot provide")
		}
		vm, err := bpf.NewVM(insns)
		if err != nil {
			return p, fmt.Errorf("capture: the filter loads SLL2 header fields the kernel cannot provide, and cannot run in user space: %w", err)
		}
		p.user = vm
		p.kernelSnap = MaxSnapLen
		body = []bpf.RawInstruction{{Op: bpfRetK, K: MaxSnapLen}}
	default:
		body = make([]bpf.RawInstruction, len(filter))
		copy(body, filter)
		capReturns(body, snap, false)
	}
	pre, err := bpf.Assemble(prefix)
	if err != nil {
		return p, fmt.Errorf("capture: assembling the filter prefix: %w", err)
	}
	p.kernel = append(pre, body...)
	if len(p.kernel) > maxInsns {
		return p, fmt.Errorf("capture: filter program too long (%d instructions with the %d-instruction prefix, kernel limit %d)", len(p.kernel), len(pre), maxInsns)
	}
	return p, nil
}

// retValue is the kernel's return value for a filter returning k: capped at
// snap and, for cooked sockets, without the 20-byte SLL2 header the kernel
// does not see (at least 1 so the packet is still accepted).
func retValue(k uint32, snap int, cooked bool) uint32 {
	if k == 0 {
		return 0
	}
	k = min(k, uint32(snap))
	if cooked {
		if k > sll2HeaderLen {
			return k - sll2HeaderLen
		}
		return 1
	}
	return k
}

// capReturns applies retValue to every "ret #k". "ret a" is left alone:
// ReadPacket caps at SnapLen in user space.
func capReturns(prog []bpf.RawInstruction, snap int, cooked bool) {
	for i := range prog {
		if prog[i].Op == bpfRetK {
			prog[i].K = retValue(prog[i].K, snap, cooked)
		}
	}
}

// rewriteSLL2 rewrites a program compiled for LINUX_SLL2 for a SOCK_DGRAM
// packet socket, whose filter sees the packet from its network header, as
// libpcap's fix_program/fix_offset (pcap-linux.c), a little stricter:
//
//   - absolute, indexed and MSH loads at offset >= 20 are moved down by 20;
//   - the SLL2 fields the kernel knows become ancillary loads when the load
//     has the field's size: ldh [0] (protocol) -> SKF_AD_PROTOCOL, ld [4]
//     (ifindex) -> SKF_AD_IFINDEX, ldh [8] (ARPHRD type) -> SKF_AD_HATYPE,
//     ldb [10] (packet type) -> SKF_AD_PKTTYPE; ldh [2] (reserved, always
//     0) -> ld #0;
//   - "ld len" becomes "ld len; add #20" (jumps relocated), since the
//     kernel's length does not count the header;
//   - "ret #k" is capped at snap and lowered by 20.
//
// Anything else below offset 20 (the link-layer address and its length, an
// indexed load with a small offset, "ldx len", a jump that no longer fits)
// makes it return false: the caller then filters in user space.
func rewriteSLL2(in []bpf.RawInstruction, snap int) ([]bpf.RawInstruction, bool) {
	out := make([]bpf.RawInstruction, 0, len(in)+4)
	newIdx := make([]int, len(in)+1)
	for i, ins := range in {
		newIdx[i] = len(out)
		extra := false
		cls, size, mode := ins.Op&bpfClassMask, ins.Op&bpfSizeMask, ins.Op&bpfModeMask
		if cls == bpfLD || cls == bpfLDX {
			switch {
			case cls == bpfLD && mode == bpfABS:
				switch {
				case int32(ins.K) < 0:
					// Already an ancillary or SKF_NET_OFF load: the
					// kernel's meaning applies.
				case ins.K >= sll2HeaderLen:
					ins.K -= sll2HeaderLen
				case size == bpfH && ins.K == 0:
					ins.K = skfAdProtocol
				case size == bpfH && ins.K == 2:
					ins = bpf.RawInstruction{Op: bpfLD | bpfIMM, K: 0}
				case size == bpfW && ins.K == 4:
					ins.K = skfAdIfindex
				case size == bpfH && ins.K == 8:
					ins.K = skfAdHatype
				case size == bpfB && ins.K == 10:
					ins.K = skfAdPkttype
				default:
					return nil, false
				}
			case cls == bpfLD && mode == bpfIND, cls == bpfLDX && mode == bpfMSH:
				if ins.K < sll2HeaderLen {
					return nil, false
				}
				ins.K -= sll2HeaderLen
			case cls == bpfLD && mode == bpfLEN:
				extra = true
			case mode == bpfIMM, mode == 0x60: // BPF_MEM
			default:
				return nil, false
			}
		}
		out = append(out, ins)
		if extra {
			out = append(out, bpf.RawInstruction{Op: bpfAddK, K: sll2HeaderLen})
		}
	}
	newIdx[len(in)] = len(out)
	for i, ins := range in {
		if ins.Op&bpfClassMask != bpfJMP {
			continue
		}
		j := newIdx[i]
		if ins.Op == bpfOpJA {
			t := i + 1 + int(ins.K)
			if t < 0 || t > len(in) {
				return nil, false
			}
			out[j].K = uint32(newIdx[t] - (j + 1))
			continue
		}
		tt, tf := i+1+int(ins.Jt), i+1+int(ins.Jf)
		if tt > len(in) || tf > len(in) {
			return nil, false
		}
		jt, jf := newIdx[tt]-(j+1), newIdx[tf]-(j+1)
		if jt > 255 || jf > 255 {
			return nil, false
		}
		out[j].Jt, out[j].Jf = uint8(jt), uint8(jf)
	}
	capReturns(out, snap, true)
	return out, true
}

// Filter prefixes. A packet's pkttype, as the kernel's filter sees it, is
// PACKET_OUTGOING for the copies dev_queue_xmit_nit hands to packet sockets.

// dropOutgoingPrefix rejects outgoing packets.
func dropOutgoingPrefix() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 0, SkipFalse: 1},
		bpf.RetConstant{Val: 0},
	}
}

// onlyOutgoingPrefix rejects every packet that is not outgoing.
func onlyOutgoingPrefix() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1, SkipFalse: 0},
		bpf.RetConstant{Val: 0},
	}
}

// anyLoopbackPrefix rejects outgoing packets on the loopback interface
// (index lo): lo hands every packet sent to packet sockets twice, outgoing
// and incoming, and "any" keeps the incoming copy, as libpcap does.
func anyLoopbackPrefix(lo uint32) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 0, SkipFalse: 3},
		bpf.LoadExtension{Num: bpf.ExtInterfaceIndex},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: lo, SkipTrue: 0, SkipFalse: 1},
		bpf.RetConstant{Val: 0},
	}
}

func attachFilter(fd int, prog []bpf.RawInstruction) error {
	filt := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filt[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filt)), Filter: &filt[0]}
	err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog)
	runtime.KeepAlive(filt)
	if err != nil {
		return fmt.Errorf("capture: the kernel rejected the filter program (%d instructions): %w", len(prog), err)
	}
	return nil
}

// ringGeometry is the TPACKET_V3 ring layout.
type ringGeometry struct {
	blockSize int
	blockNr   int
	timeout   time.Duration // tp_retire_blk_tov: a partly filled block is handed over after this
}

const (
	minBlockSize = 128 << 10
	// blockHeadroom covers, before a packet's data in a block, the block
	// descriptor, tpacket3_hdr, sockaddr_ll and the link-layer header
	// alignment (tpacket_rcv's macoff).
	blockHeadroom = 256
	blockTimeout  = 10 * time.Millisecond
)

// defaultGeometry sizes blocks so that a packet of kernelSnap bytes fits in
// one (TPACKET_V3 truncates to the block otherwise) and uses enough of them
// for ringBytes (at least DefaultRingBytes).
func defaultGeometry(kernelSnap, ringBytes int) ringGeometry {
	bs := minBlockSize
	for bs < kernelSnap+blockHeadroom {
		bs <<= 1
	}
	rb := min(max(ringBytes, DefaultRingBytes), MaxRingBytes)
	return ringGeometry{blockSize: bs, blockNr: (rb + bs - 1) / bs, timeout: blockTimeout}
}
