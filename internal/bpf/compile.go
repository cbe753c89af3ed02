package bpf

import (
	"fmt"

	xbpf "golang.org/x/net/bpf"
)

// LinkType selects the link-layer header the program is compiled for.
type LinkType int

const (
	// EN10MB is Ethernet (DLT_EN10MB), without VLAN tags.
	EN10MB LinkType = iota + 1
	// LinuxSLL2 is Linux cooked capture v2 (DLT_LINUX_SLL2), used for "any".
	LinuxSLL2
)

func (l LinkType) String() string {
	switch l {
	case EN10MB:
		return "EN10MB"
	case LinuxSLL2:
		return "LINUX_SLL2"
	}
	return fmt.Sprintf("LinkType(%d)", int(l))
}

// DefaultSnaplen is used when Compile is given a snap length of 0 (as tcpdump).
const DefaultSnaplen = 262144

// maxInsns is the kernel's BPF_MAXINSNS.
const maxInsns = 4096

// Compile compiles a tcpdump filter expression for linkType. The program
// returns snaplen for accepted packets and 0 for rejected ones; an empty
// filter accepts every packet. Filters outside the supported subset (see the
// package documentation) return a *SyntaxError.
func Compile(filter string, linkType LinkType, snaplen uint32) ([]xbpf.Instruction, error) {
	g := &gen{}
	switch linkType {
	case EN10MB:
		g.typeOff, g.nh = 12, 14
	case LinuxSLL2:
		g.typeOff, g.nh = 0, 20
	default:
		return nil, fmt.Errorf("filter: unsupported link type %v", linkType)
	}
	if snaplen == 0 {
		snaplen = DefaultSnaplen
	}
	ast, err := parse(filter, linkType)
	if err != nil {
		return nil, err
	}
	if ast == nil {
		return []xbpf.Instruction{xbpf.RetConstant{Val: snaplen}}, nil
	}
	lt, lf := g.newLabel(), g.newLabel()
	g.cond(ast, lt, lf)
	g.label(lt)
	g.emit(xbpf.RetConstant{Val: snaplen})
	g.label(lf)
	g.emit(xbpf.RetConstant{Val: 0})
	if g.err != nil {
		return nil, g.err
	}
	prog, err := g.assemble()
	if err != nil {
		return nil, err
	}
	if len(prog) > maxInsns {
		return nil, fmt.Errorf("filter: program too long (%d instructions, kernel limit %d)", len(prog), maxInsns)
	}
	return prog, nil
}

// item is one element of the symbolic program: a plain instruction, a
// conditional jump to labels, or a label definition.
type item struct {
	ins      xbpf.Instruction
	isJump   bool
	isJumpX  bool
	isLabel  bool
	test     xbpf.JumpTest
	val      uint32
	jt, jf   int
	labelID  int
	long     bool // needs trampolines (offset > 255)
	position int
}

type gen struct {
	typeOff, nh uint32
	items       []item
	labels      int
	err         error
}

func (g *gen) newLabel() int { g.labels++; return g.labels - 1 }
func (g *gen) label(l int)   { g.items = append(g.items, item{isLabel: true, labelID: l}) }
func (g *gen) emit(ins xbpf.Instruction) {
	g.items = append(g.items, item{ins: ins})
}
func (g *gen) jumpX(test xbpf.JumpTest, jt, jf int) {
	g.items = append(g.items, item{isJump: true, isJumpX: true, test: test, jt: jt, jf: jf})
}

func (g *gen) jump(test xbpf.JumpTest, val uint32, jt, jf int) {
	g.items = append(g.items, item{isJump: true, test: test, val: val, jt: jt, jf: jf})
}

// assemble lays the program out, turning conditional jumps whose offsets do
// not fit in 8 bits into a short jump over two unconditional ones.
func (g *gen) assemble() ([]xbpf.Instruction, error) {
	pos := make([]int, g.labels)
	for {
		p := 0
		for i := range g.items {
			it := &g.items[i]
			it.position = p
			switch {
			case it.isLabel:
				pos[it.labelID] = p
			case it.isJump && it.long:
				p += 3
			default:
				p++
			}
		}
		changed := false
		for i := range g.items {
			it := &g.items[i]
			if it.isJump && !it.long {
				if pos[it.jt]-it.position-1 > 255 || pos[it.jf]-it.position-1 > 255 {
					it.long = true
					changed = true
				}
			}
		}
		if !changed {
			break
		}
	}
	var out []xbpf.Instruction
	for _, it := range g.items {
		switch {
		case it.isLabel:
		case it.isJump:
			t, f := pos[it.jt]-it.position-1, pos[it.jf]-it.position-1
			if t < 0 || f < 0 {
				return nil, fmt.Errorf("filter: internal error: backward jump")
			}
			cj := func(st, sf uint8) xbpf.Instruction {
				if it.isJumpX {
					return xbpf.JumpIfX{Cond: it.test, SkipTrue: st, SkipFalse: sf}
				}
				return xbpf.JumpIf{Cond: it.test, Val: it.val, SkipTrue: st, SkipFalse: sf}
			}
			if it.long {
				out = append(out, cj(0, 1), xbpf.Jump{Skip: uint32(t - 1)}, xbpf.Jump{Skip: uint32(f - 2)})
			} else {
				out = append(out, cj(uint8(t), uint8(f)))
			}
		default:
			out = append(out, it.ins)
		}
	}
	return out, nil
}

// cond emits code that jumps to lt when n holds and to lf otherwise.
func (g *gen) cond(n node, lt, lf int) {
	switch n := n.(type) {
	case andNode:
		mid := g.newLabel()
		g.cond(n.l, mid, lf)
		g.label(mid)
		g.cond(n.r, lt, lf)
	case orNode:
		mid := g.newLabel()
		g.cond(n.l, lt, mid)
		g.label(mid)
		g.cond(n.r, lt, lf)
	case notNode:
		g.cond(n.x, lf, lt)
	case protoNode:
		g.proto(n.proto, lt, lf)
	case hostNode:
		g.host(n, lt, lf)
	case portNode:
		g.port(n, lt, lf)
	case etherCastNode:
		if n.multicast {
			g.emit(xbpf.LoadAbsolute{Off: 0, Size: 1})
			g.jump(xbpf.JumpBitsSet, 1, lt, lf)
			return
		}
		g.seq(lt, lf,
			func(t, f int) { g.ldEq(2, 4, 0xffffffff, 0xffffffff, t, f) },
			func(t, f int) { g.ldEq(0, 2, 0xffff, 0xffff, t, f) })
	case etherProtoNode:
		g.ethertype(n.num, lt, lf)
	case etherHostNode:
		m := n.mac
		at := func(off uint32) func(t, f int) {
			return func(t, f int) {
				g.seq(t, f,
					func(t, f int) {
						g.ldEq(off+2, 4, 0xffffffff, uint32(m[2])<<24|uint32(m[3])<<16|uint32(m[4])<<8|uint32(m[5]), t, f)
					},
					func(t, f int) { g.ldEq(off, 2, 0xffff, uint32(m[0])<<8|uint32(m[1]), t, f) })
			}
		}
		g.dirs(n.dir, lt, lf, at(6), at(0))
	case relNode:
		g.relation(n, lt, lf)
	case ipProtoNode:
		g.ipProto(n.proto, n.num, lt, lf)
	default:
		panic(fmt.Sprintf("bpf: unknown node %T", n))
	}
}

const (
	etherIP   = 0x0800
	etherIP6  = 0x86dd
	etherARP  = 0x0806
	etherRARP = 0x8035

	ipprotoICMP  = 1
	ipprotoTCP   = 6
	ipprotoUDP   = 17
	ipprotoICMP6 = 58
	ipprotoSCTP  = 132
	ipprotoFrag  = 44
)

// then runs f with a fresh label that f's code falls into when cond holds.
func (g *gen) ethertype(t uint32, lt, lf int) {
	g.emit(xbpf.LoadAbsolute{Off: g.typeOff, Size: 2})
	g.jump(xbpf.JumpEqual, t, lt, lf)
}

// ldEq loads size bytes at off and jumps to lt when (value&mask) == val.
func (g *gen) ldEq(off, size, mask, val uint32, lt, lf int) {
	g.emit(xbpf.LoadAbsolute{Off: off, Size: int(size)})
	if size == 4 && mask != 0xffffffff {
		g.emit(xbpf.ALUOpConstant{Op: xbpf.ALUOpAnd, Val: mask})
	}
	g.jump(xbpf.JumpEqual, val, lt, lf)
}

func (g *gen) seq(lt, lf int, parts ...func(lt, lf int)) {
	for i, p := range parts {
		if i == len(parts)-1 {
			p(lt, lf)
			return
		}
		mid := g.newLabel()
		p(mid, lf)
		g.label(mid)
	}
}

func (g *gen) proto(p int, lt, lf int) {
	switch p {
	case pIP:
		g.ethertype(etherIP, lt, lf)
	case pIP6:
		g.ethertype(etherIP6, lt, lf)
	case pARP:
		g.ethertype(etherARP, lt, lf)
	case pRARP:
		g.ethertype(etherRARP, lt, lf)
	case pICMP:
		g.seq(lt, lf,
			func(t, f int) { g.ethertype(etherIP, t, f) },
			func(t, f int) { g.ldEq(g.nh+9, 1, 0xff, ipprotoICMP, t, f) })
	case pTCP, pUDP, pSCTP:
		num := map[int]uint32{pTCP: ipprotoTCP, pUDP: ipprotoUDP, pSCTP: ipprotoSCTP}[p]
		g.ipProto(pDefault, num, lt, lf)
	case pICMP6:
		g.ipProto(pIP6, ipprotoICMP6, lt, lf)
	default:
		panic("bpf: bad proto")
	}
}

// ipProto matches IPv4 protocol num (which == pIP), IPv6 next header num,
// directly or after a fragment header (pIP6), or either (pDefault).
func (g *gen) ipProto(which int, num uint32, lt, lf int) {
	{
		v6 := func(t, f int) {
			g.seq(t, f,
				func(t, f int) { g.ethertype(etherIP6, t, f) },
				func(t, f int) {
					// next header, or a fragment header followed by it
					frag := g.newLabel()
					g.ldEq(g.nh+6, 1, 0xff, num, t, frag)
					g.label(frag)
					g.seq(t, f,
						func(t, f int) { g.jump(xbpf.JumpEqual, ipprotoFrag, t, f) },
						func(t, f int) { g.ldEq(g.nh+40, 1, 0xff, num, t, f) })
				})
		}
		v4 := func(t, f int) {
			g.seq(t, f,
				func(t, f int) { g.ethertype(etherIP, t, f) },
				func(t, f int) { g.ldEq(g.nh+9, 1, 0xff, num, t, f) })
		}
		switch which {
		case pIP6:
			v6(lt, lf)
		case pIP:
			v4(lt, lf)
		default:
			mid := g.newLabel()
			v4(lt, mid)
			g.label(mid)
			v6(lt, lf)
		}
	}
}

// dirs emits the src/dst combination of a per-address test.
func (g *gen) dirs(dir int, lt, lf int, src, dst func(lt, lf int)) {
	switch dir {
	case dSrc:
		src(lt, lf)
	case dDst:
		dst(lt, lf)
	case dAnd:
		g.seq(lt, lf, src, dst)
	default:
		mid := g.newLabel()
		src(lt, mid)
		g.label(mid)
		dst(lt, lf)
	}
}

func (g *gen) host(n hostNode, lt, lf int) {
	if n.v6 {
		cmp := func(off uint32) func(lt, lf int) {
			return func(lt, lf int) {
				var parts []func(int, int)
				for w := 0; w < 4; w++ {
					m := uint32(n.mask[4*w])<<24 | uint32(n.mask[4*w+1])<<16 | uint32(n.mask[4*w+2])<<8 | uint32(n.mask[4*w+3])
					v := uint32(n.addr[4*w])<<24 | uint32(n.addr[4*w+1])<<16 | uint32(n.addr[4*w+2])<<8 | uint32(n.addr[4*w+3])
					if m == 0 {
						continue
					}
					o := off + uint32(4*w)
					parts = append(parts, func(t, f int) { g.ldEq(o, 4, m, v, t, f) })
				}
				if len(parts) == 0 {
					parts = append(parts, func(t, f int) { g.jumpAlways(t) })
				}
				g.seq(lt, lf, parts...)
			}
		}
		g.seq(lt, lf,
			func(t, f int) { g.ethertype(etherIP6, t, f) },
			func(t, f int) { g.dirs(n.dir, t, f, cmp(g.nh+8), cmp(g.nh+24)) })
		return
	}
	m := uint32(n.mask[0])<<24 | uint32(n.mask[1])<<16 | uint32(n.mask[2])<<8 | uint32(n.mask[3])
	v := uint32(n.addr[0])<<24 | uint32(n.addr[1])<<16 | uint32(n.addr[2])<<8 | uint32(n.addr[3])
	cmp := func(off uint32) func(lt, lf int) {
		return func(lt, lf int) {
			if m == 0 {
				g.jumpAlways(lt)
				return
			}
			g.ldEq(off, 4, m, v, lt, lf)
		}
	}
	ip := func(t, f int) {
		g.seq(t, f,
			func(t, f int) { g.ethertype(etherIP, t, f) },
			func(t, f int) { g.dirs(n.dir, t, f, cmp(g.nh+12), cmp(g.nh+16)) })
	}
	arp := func(et uint32) func(t, f int) {
		return func(t, f int) {
			g.seq(t, f,
				func(t, f int) { g.ethertype(et, t, f) },
				func(t, f int) { g.dirs(n.dir, t, f, cmp(g.nh+14), cmp(g.nh+24)) })
		}
	}
	switch n.proto {
	case pIP:
		ip(lt, lf)
	case pARP:
		arp(etherARP)(lt, lf)
	case pRARP:
		arp(etherRARP)(lt, lf)
	default:
		m1, m2 := g.newLabel(), g.newLabel()
		ip(lt, m1)
		g.label(m1)
		arp(etherARP)(lt, m2)
		g.label(m2)
		arp(etherRARP)(lt, lf)
	}
}

func (g *gen) jumpAlways(l int) {
	// A conditional jump whose both targets are l keeps label resolution uniform.
	g.jump(xbpf.JumpEqual, 0, l, l)
}

func (g *gen) port(n portNode, lt, lf int) {
	protos := []uint32{ipprotoSCTP, ipprotoTCP, ipprotoUDP}
	switch n.proto {
	case pTCP:
		protos = []uint32{ipprotoTCP}
	case pUDP:
		protos = []uint32{ipprotoUDP}
	case pSCTP:
		protos = []uint32{ipprotoSCTP}
	}
	protoIn := func(off uint32) func(t, f int) {
		return func(t, f int) {
			g.emit(xbpf.LoadAbsolute{Off: off, Size: 1})
			for i, p := range protos {
				if i == len(protos)-1 {
					g.jump(xbpf.JumpEqual, p, t, f)
				} else {
					nx := g.newLabel()
					g.jump(xbpf.JumpEqual, p, t, nx)
					g.label(nx)
				}
			}
		}
	}
	match := func(load xbpf.Instruction) func(t, f int) {
		return func(t, f int) {
			g.emit(load)
			if n.lo == n.hi {
				g.jump(xbpf.JumpEqual, n.lo, t, f)
				return
			}
			ge := g.newLabel()
			g.jump(xbpf.JumpGreaterOrEqual, n.lo, ge, f)
			g.label(ge)
			g.jump(xbpf.JumpGreaterThan, n.hi, f, t)
		}
	}
	mid := g.newLabel()
	g.seq(lt, mid,
		func(t, f int) { g.ethertype(etherIP6, t, f) },
		protoIn(g.nh+6),
		func(t, f int) {
			g.dirs(n.dir, t, f,
				match(xbpf.LoadAbsolute{Off: g.nh + 40, Size: 2}),
				match(xbpf.LoadAbsolute{Off: g.nh + 42, Size: 2}))
		})
	g.label(mid)
	g.seq(lt, lf,
		func(t, f int) { g.ethertype(etherIP, t, f) },
		protoIn(g.nh+9),
		func(t, f int) {
			// only the first fragment carries the transport header
			g.emit(xbpf.LoadAbsolute{Off: g.nh + 6, Size: 2})
			g.jump(xbpf.JumpBitsSet, 0x1fff, f, t)
		},
		func(t, f int) {
			g.emit(xbpf.LoadMemShift{Off: g.nh})
			g.dirs(n.dir, t, f,
				match(xbpf.LoadIndirect{Off: g.nh, Size: 2}),
				match(xbpf.LoadIndirect{Off: g.nh + 2, Size: 2}))
		})
}
