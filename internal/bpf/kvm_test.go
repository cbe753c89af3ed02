package bpf

import (
	"encoding/binary"
	"fmt"

	xbpf "golang.org/x/net/bpf"
)

// skbMeta is the packet metadata a Linux socket filter can read through
// ancillary loads (SKF_AD_*), for the VLAN extensions libpcap uses.
type skbMeta struct {
	vlanPresent bool
	vlanTCI     uint16
	vlanTPID    uint16
}

// kernelView is a frame as a socket filter on Linux sees it: data after the
// kernel took the outer 802.1Q or 802.1ad tag out of the frame (as
// skb_vlan_untag does on receive), and the metadata holding it.
type kernelView struct {
	data []byte
	meta skbMeta
}

// kernelViews returns the ways the kernel may present an Ethernet frame to
// a socket filter: as is, with nothing in the metadata (a tag that was
// not offloaded, or no tag), and, when the outer TPID is one the kernel
// strips, without the tag and with it in the metadata.
func kernelViews(eth []byte) []kernelView {
	vs := []kernelView{{data: eth}}
	if len(eth) >= 18 {
		if tpid := binary.BigEndian.Uint16(eth[12:]); tpid == 0x8100 || tpid == 0x88a8 {
			data := append(append([]byte{}, eth[:12]...), eth[16:]...)
			vs = append(vs, kernelView{data: data, meta: skbMeta{vlanPresent: true, vlanTCI: binary.BigEndian.Uint16(eth[14:]), vlanTPID: tpid}})
		}
	}
	return vs
}

// skfADOff is SKF_AD_OFF: absolute loads at or above it read metadata.
const skfADOff = 0xfffff000

// runKernel interprets a classic BPF program the way Linux runs a socket
// filter (the x/net/bpf VM does not implement ancillary loads): a load past
// the end of the packet or a division by zero returns 0.
func runKernel(raw []xbpf.RawInstruction, v kernelView) (uint32, error) {
	var a, x uint32
	var mem [16]uint32
	pkt := v.data
	load := func(off uint32, size uint32) (uint32, bool) {
		if uint64(off)+uint64(size) > uint64(len(pkt)) {
			return 0, false
		}
		switch size {
		case 1:
			return uint32(pkt[off]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(pkt[off:])), true
		default:
			return binary.BigEndian.Uint32(pkt[off:]), true
		}
	}
	sizeOf := map[uint16]uint32{0x00: 4, 0x08: 2, 0x10: 1}
	for pc := 0; pc < len(raw); pc++ {
		ins := raw[pc]
		k := ins.K
		cls := ins.Op & 0x07
		switch cls {
		case 0x00, 0x01: // LD, LDX
			mode := ins.Op & 0xe0
			size := sizeOf[ins.Op&0x18]
			var val uint32
			switch mode {
			case 0x00: // IMM
				val = k
			case 0x20, 0x40: // ABS, IND
				if cls != 0x00 {
					return 0, fmt.Errorf("pc %d: bad LDX mode", pc)
				}
				off := k
				if mode == 0x40 {
					off = x + k
				} else if k >= skfADOff {
					switch k - skfADOff {
					case 44: // SKF_AD_VLAN_TAG
						val = uint32(v.meta.vlanTCI)
					case 48: // SKF_AD_VLAN_TAG_PRESENT
						if v.meta.vlanPresent {
							val = 1
						}
					case 60: // SKF_AD_VLAN_TPID
						val = uint32(v.meta.vlanTPID)
					default:
						return 0, fmt.Errorf("pc %d: ancillary load %d not emulated", pc, k-skfADOff)
					}
					a = val
					continue
				}
				w, ok := load(off, size)
				if !ok {
					return 0, nil
				}
				val = w
			case 0x60: // MEM
				val = mem[k&15]
			case 0x80: // LEN
				val = uint32(len(pkt))
			case 0xa0: // MSH
				w, ok := load(k, 1)
				if !ok {
					return 0, nil
				}
				val = 4 * (w & 0xf)
			}
			if cls == 0x00 {
				a = val
			} else {
				x = val
			}
		case 0x02:
			mem[k&15] = a
		case 0x03:
			mem[k&15] = x
		case 0x04: // ALU
			src := k
			if ins.Op&0x08 != 0 {
				src = x
			}
			switch ins.Op & 0xf0 {
			case 0x00:
				a += src
			case 0x10:
				a -= src
			case 0x20:
				a *= src
			case 0x30:
				if src == 0 {
					return 0, nil
				}
				a /= src
			case 0x40:
				a |= src
			case 0x50:
				a &= src
			case 0x60:
				a <<= src
			case 0x70:
				a >>= src
			case 0x80:
				a = -a
			case 0x90:
				if src == 0 {
					return 0, nil
				}
				a %= src
			case 0xa0:
				a ^= src
			}
		case 0x05: // JMP
			src := k
			if ins.Op&0x08 != 0 {
				src = x
			}
			var cond bool
			switch ins.Op & 0xf0 {
			case 0x00:
				pc += int(k)
				continue
			case 0x10:
				cond = a == src
			case 0x20:
				cond = a > src
			case 0x30:
				cond = a >= src
			case 0x40:
				cond = a&src != 0
			}
			if cond {
				pc += int(ins.Jt)
			} else {
				pc += int(ins.Jf)
			}
		case 0x06: // RET
			switch ins.Op & 0x18 {
			case 0x10:
				return a, nil
			case 0x08:
				return x, nil
			}
			return k, nil
		case 0x07:
			if ins.Op&0xf8 == 0x80 {
				a = x
			} else {
				x = a
			}
		}
	}
	return 0, fmt.Errorf("fell off the end of the program")
}
