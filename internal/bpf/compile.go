package bpf

import (
	"fmt"

	xbpf "golang.org/x/net/bpf"
)

// LinkType selects the link-layer header the program is compiled for.
type LinkType int

const (
	// EN10MB is Ethernet (DLT_EN10MB). VLAN tags are part of the frame
	// unless Options.KernelVLAN says the kernel has moved the outer one
	// into packet metadata.
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
// package documentation) return a *SyntaxError. It is CompileWithOptions
// with the zero Options: the program gives the verdicts of what
// "tcpdump -y LINKTYPE -d" prints (libpcap's code for a dead handle), for
// frames that carry their VLAN tags, as in saved captures.
func Compile(filter string, linkType LinkType, snaplen uint32) ([]xbpf.Instruction, error) {
	return CompileWithOptions(filter, linkType, snaplen, Options{})
}

// Options adjusts code generation for where the program will run.
type Options struct {
	// KernelVLAN generates VLAN tests for a program attached to a Linux
	// socket (SO_ATTACH_FILTER on AF_PACKET), as libpcap does for a live
	// Linux capture (BPF_SPECIAL_VLAN_HANDLING): the kernel usually strips
	// the outer 802.1Q/802.1ad tag before socket filters run and keeps it in
	// packet metadata, so the first "vlan" of the expression consults the
	// ancillary loads SKF_AD_VLAN_TAG_PRESENT and SKF_AD_VLAN_TAG
	// (xbpf.ExtVLANTagPresent, xbpf.ExtVLANTag) before looking for a tag in
	// the frame, and what follows it is addressed through a run-time offset
	// kept in scratch memory M[15]. Only expressions that use "vlan" are
	// affected. golang.org/x/net/bpf's VM does not implement these
	// extensions: such programs run only in the kernel.
	KernelVLAN bool
}

// vlanReg is the scratch slot holding the run-time part of the link-layer
// payload offset in KernelVLAN programs; arithmetic uses the slots below it.
const vlanReg = 15

// CompileWithOptions is Compile with code-generation options.
func CompileWithOptions(filter string, linkType LinkType, snaplen uint32, o Options) ([]xbpf.Instruction, error) {
	g := &gen{kernelVLAN: o.KernelVLAN}
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
	if g.varUsed {
		// The kernel's checker refuses to read scratch memory that may not
		// have been written: start the run-time offset at 0.
		g.items = append([]item{
			{ins: xbpf.LoadConstant{Dst: xbpf.RegA, Val: 0}},
			{ins: xbpf.StoreScratch{Src: xbpf.RegA, N: vlanReg}},
		}, g.items...)
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
	// typeOff and nh are the offsets of the EtherType (or SLL2 protocol)
	// and of the network-layer header; like libpcap, every "vlan" moves
	// both and every "mpls" the second, for whatever is generated after it.
	typeOff, nh uint32
	// varOff: the offsets above also have a run-time part in M[vlanReg]
	// (KernelVLAN, after the first "vlan"); varUsed: M[vlanReg] is used.
	varOff, varUsed bool
	kernelVLAN      bool
	vlanDepth       int
	mplsDepth       int
	cur             token // the primitive being generated, for errors
	items           []item
	labels          int
	err             error
}

// fail records a *SyntaxError for the primitive being generated.
func (g *gen) fail(msg string) {
	if g.err == nil {
		g.err = &SyntaxError{Pos: g.cur.pos, Word: g.cur.text, Msg: msg}
	}
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
	case atNode:
		save := g.cur
		g.cur = n.tok
		g.cond(n.x, lt, lf)
		g.cur = save
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
	case vlanNode:
		g.vlan(n, lt, lf)
	case mplsNode:
		g.mpls(n, lt, lf)
	default:
		panic(fmt.Sprintf("bpf: unknown node %T", n))
	}
}

const (
	etherIP    = 0x0800
	etherIP6   = 0x86dd
	etherARP   = 0x0806
	etherRARP  = 0x8035
	etherMPLS  = 0x8847
	ether8021Q = 0x8100
	// 802.1ad and the pre-standard QinQ TPID libpcap also accepts.
	ether8021AD   = 0x88a8
	ether8021QinQ = 0x9100

	ipprotoICMP  = 1
	ipprotoTCP   = 6
	ipprotoUDP   = 17
	ipprotoICMP6 = 58
	ipprotoSCTP  = 132
	ipprotoFrag  = 44
)

// ldType loads the EtherType (SLL2 protocol) field into A.
func (g *gen) ldType() {
	if g.varOff {
		g.emit(xbpf.LoadScratch{Dst: xbpf.RegX, N: vlanReg})
		g.emit(xbpf.LoadIndirect{Off: g.typeOff, Size: 2})
		return
	}
	g.emit(xbpf.LoadAbsolute{Off: g.typeOff, Size: 2})
}

// ldNet loads size bytes at off from the start of the network-layer header.
func (g *gen) ldNet(off int, size int) {
	o := uint32(int64(g.nh) + int64(off))
	if g.varOff {
		g.emit(xbpf.LoadScratch{Dst: xbpf.RegX, N: vlanReg})
		g.emit(xbpf.LoadIndirect{Off: o, Size: size})
		return
	}
	g.emit(xbpf.LoadAbsolute{Off: o, Size: size})
}

// ldxTransport sets X so that LoadIndirect{Off: g.nh + k} reads byte k of
// the header after an IPv4 header (X = IHL*4, plus the run-time offset).
func (g *gen) ldxTransport() {
	if !g.varOff {
		g.emit(xbpf.LoadMemShift{Off: g.nh})
		return
	}
	g.emit(xbpf.LoadScratch{Dst: xbpf.RegX, N: vlanReg})
	g.emit(xbpf.LoadIndirect{Off: g.nh, Size: 1})
	g.emit(xbpf.ALUOpConstant{Op: xbpf.ALUOpAnd, Val: 0xf})
	g.emit(xbpf.ALUOpConstant{Op: xbpf.ALUOpShiftLeft, Val: 2})
	g.emit(xbpf.ALUOpX{Op: xbpf.ALUOpAdd})
	g.emit(xbpf.TAX{})
}

// ethertype tests the link-layer protocol. Inside an MPLS stack, as in
// libpcap, only IPv4 and IPv6 can be tested: the bottom-of-stack bit of the
// last label and the IP version nibble.
func (g *gen) ethertype(t uint32, lt, lf int) {
	if g.mplsDepth > 0 {
		var v uint32
		switch t {
		case etherIP:
			v = 0x40
		case etherIP6:
			v = 0x60
		default:
			g.fail("unsupported protocol over mpls")
			return
		}
		g.seq(lt, lf,
			func(t, f int) { g.netEq(-2, 1, 0x01, 0x01, t, f) },
			func(t, f int) { g.netEq(0, 1, 0xf0, v, t, f) })
		return
	}
	g.ldType()
	g.jump(xbpf.JumpEqual, t, lt, lf)
}

// mask applies mask to a value of size bytes in A unless it keeps every bit.
func (g *gen) mask(size int, mask uint32) {
	full := uint32(0xffffffff)
	if size < 4 {
		full = 1<<(8*size) - 1
	}
	if mask&full != full {
		g.emit(xbpf.ALUOpConstant{Op: xbpf.ALUOpAnd, Val: mask})
	}
}

// ldEq loads size bytes at off from the start of the link-layer header and
// jumps to lt when (value&mask) == val.
func (g *gen) ldEq(off uint32, size int, mask, val uint32, lt, lf int) {
	g.emit(xbpf.LoadAbsolute{Off: off, Size: size})
	g.mask(size, mask)
	g.jump(xbpf.JumpEqual, val, lt, lf)
}

// netEq is ldEq relative to the network-layer header.
func (g *gen) netEq(off int, size int, mask, val uint32, lt, lf int) {
	g.ldNet(off, size)
	g.mask(size, mask)
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

// any jumps to lt when any of parts holds.
func (g *gen) any(lt, lf int, parts ...func(lt, lf int)) {
	for i, p := range parts {
		if i == len(parts)-1 {
			p(lt, lf)
			return
		}
		mid := g.newLabel()
		p(lt, mid)
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
			func(t, f int) { g.netEq(9, 1, 0xff, ipprotoICMP, t, f) })
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
	v6 := func(t, f int) {
		g.seq(t, f,
			func(t, f int) { g.ethertype(etherIP6, t, f) },
			func(t, f int) {
				// next header, or a fragment header followed by it
				frag := g.newLabel()
				g.netEq(6, 1, 0xff, num, t, frag)
				g.label(frag)
				g.seq(t, f,
					func(t, f int) { g.jump(xbpf.JumpEqual, ipprotoFrag, t, f) },
					func(t, f int) { g.netEq(40, 1, 0xff, num, t, f) })
			})
	}
	v4 := func(t, f int) {
		g.seq(t, f,
			func(t, f int) { g.ethertype(etherIP, t, f) },
			func(t, f int) { g.netEq(9, 1, 0xff, num, t, f) })
	}
	switch which {
	case pIP6:
		v6(lt, lf)
	case pIP:
		v4(lt, lf)
	default:
		g.any(lt, lf, v4, v6)
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
		g.any(lt, lf, src, dst)
	}
}

func (g *gen) host(n hostNode, lt, lf int) {
	if n.v6 {
		cmp := func(off int) func(lt, lf int) {
			return func(lt, lf int) {
				var parts []func(int, int)
				for w := 0; w < 4; w++ {
					m := uint32(n.mask[4*w])<<24 | uint32(n.mask[4*w+1])<<16 | uint32(n.mask[4*w+2])<<8 | uint32(n.mask[4*w+3])
					v := uint32(n.addr[4*w])<<24 | uint32(n.addr[4*w+1])<<16 | uint32(n.addr[4*w+2])<<8 | uint32(n.addr[4*w+3])
					if m == 0 {
						continue
					}
					o := off + 4*w
					parts = append(parts, func(t, f int) { g.netEq(o, 4, m, v, t, f) })
				}
				if len(parts) == 0 {
					parts = append(parts, func(t, f int) { g.jumpAlways(t) })
				}
				g.seq(lt, lf, parts...)
			}
		}
		g.seq(lt, lf,
			func(t, f int) { g.ethertype(etherIP6, t, f) },
			func(t, f int) { g.dirs(n.dir, t, f, cmp(8), cmp(24)) })
		return
	}
	m := uint32(n.mask[0])<<24 | uint32(n.mask[1])<<16 | uint32(n.mask[2])<<8 | uint32(n.mask[3])
	v := uint32(n.addr[0])<<24 | uint32(n.addr[1])<<16 | uint32(n.addr[2])<<8 | uint32(n.addr[3])
	cmp := func(off int) func(lt, lf int) {
		return func(lt, lf int) {
			if m == 0 {
				g.jumpAlways(lt)
				return
			}
			g.netEq(off, 4, m, v, lt, lf)
		}
	}
	ip := func(t, f int) {
		g.seq(t, f,
			func(t, f int) { g.ethertype(etherIP, t, f) },
			func(t, f int) { g.dirs(n.dir, t, f, cmp(12), cmp(16)) })
	}
	arp := func(et uint32) func(t, f int) {
		return func(t, f int) {
			g.seq(t, f,
				func(t, f int) { g.ethertype(et, t, f) },
				func(t, f int) { g.dirs(n.dir, t, f, cmp(14), cmp(24)) })
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
		if g.mplsDepth > 0 {
			// libpcap tests only IPv4 inside an MPLS stack.
			ip(lt, lf)
			return
		}
		g.any(lt, lf, ip, arp(etherARP), arp(etherRARP))
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
	protoIn := func(off int) func(t, f int) {
		return func(t, f int) {
			g.ldNet(off, 1)
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
	match := func(load func()) func(t, f int) {
		return func(t, f int) {
			load()
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
	ind := func(off uint32) func() {
		return func() { g.emit(xbpf.LoadIndirect{Off: g.nh + off, Size: 2}) }
	}
	mid := g.newLabel()
	g.seq(lt, mid,
		func(t, f int) { g.ethertype(etherIP6, t, f) },
		protoIn(6),
		func(t, f int) {
			g.dirs(n.dir, t, f,
				match(func() { g.ldNet(40, 2) }),
				match(func() { g.ldNet(42, 2) }))
		})
	g.label(mid)
	g.seq(lt, lf,
		func(t, f int) { g.ethertype(etherIP, t, f) },
		protoIn(9),
		func(t, f int) { g.firstFragment(t, f) },
		func(t, f int) {
			g.ldxTransport()
			g.dirs(n.dir, t, f, match(ind(0)), match(ind(2)))
		})
}

// firstFragment jumps to lt for an IPv4 packet whose fragment offset is 0:
// only the first fragment carries the transport header.
func (g *gen) firstFragment(lt, lf int) {
	g.ldNet(6, 2)
	g.jump(xbpf.JumpBitsSet, 0x1fff, lf, lt)
}

// vlan generates libpcap's gen_vlan: an 802.1Q, 802.1ad or QinQ TPID and
// optionally the VLAN ID, then moves the offsets past the tag for what
// follows in the expression (in parse order, whatever the operators).
func (g *gen) vlan(n vlanNode, lt, lf int) {
	if g.mplsDepth > 0 {
		g.fail("no VLAN match after MPLS")
		return
	}
	tpid := func(t, f int) {
		g.ldType()
		m1, m2 := g.newLabel(), g.newLabel()
		g.jump(xbpf.JumpEqual, ether8021Q, t, m1)
		g.label(m1)
		g.jump(xbpf.JumpEqual, ether8021AD, t, m2)
		g.label(m2)
		g.jump(xbpf.JumpEqual, ether8021QinQ, t, f)
	}
	vid := func(t, f int) { g.netEq(0, 2, 0x0fff, n.num, t, f) }
	if g.kernelVLAN && g.vlanDepth == 0 {
		g.vlanKernel(n, tpid, vid, lt, lf)
	} else {
		if n.hasNum {
			g.seq(lt, lf, tpid, vid)
		} else {
			tpid(lt, lf)
		}
		g.typeOff += 4
		g.nh += 4
	}
	g.vlanDepth++
}

// vlanKernel is libpcap's gen_vlan_bpf_extensions: the outermost tag is
// either in the packet metadata (the kernel stripped it) or still in the
// frame; in the second case the run-time offset grows by 4. The constant
// offsets stay, and from here on every load adds the run-time part.
func (g *gen) vlanKernel(n vlanNode, tpid, vid func(t, f int), lt, lf int) {
	g.varUsed = true
	tagged := lt
	if n.hasNum {
		tagged = g.newLabel()
	}
	inFrame := g.newLabel()
	g.emit(xbpf.LoadExtension{Num: xbpf.ExtVLANTagPresent})
	g.jump(xbpf.JumpEqual, 1, tagged, inFrame)
	g.label(inFrame)
	g.emit(xbpf.LoadScratch{Dst: xbpf.RegA, N: vlanReg})
	g.emit(xbpf.ALUOpConstant{Op: xbpf.ALUOpAdd, Val: 4})
	g.emit(xbpf.StoreScratch{Src: xbpf.RegA, N: vlanReg})
	tpid(tagged, lf)
	if n.hasNum {
		g.label(tagged)
		meta, frame := g.newLabel(), g.newLabel()
		g.emit(xbpf.LoadExtension{Num: xbpf.ExtVLANTagPresent})
		g.jump(xbpf.JumpEqual, 1, meta, frame)
		g.label(meta)
		g.emit(xbpf.LoadExtension{Num: xbpf.ExtVLANTag})
		g.mask(4, 0x0fff)
		g.jump(xbpf.JumpEqual, n.num, lt, lf)
		g.label(frame)
		vid(lt, lf)
	}
	g.varOff = true
}

// mpls generates libpcap's gen_mpls: the MPLS EtherType (or, inside a
// label stack, a clear bottom-of-stack bit in the previous label) and
// optionally the label, then moves the network-layer offset past it.
func (g *gen) mpls(n mplsNode, lt, lf int) {
	first := func(t, f int) {
		if g.mplsDepth > 0 {
			g.netEq(-2, 1, 0x01, 0, t, f)
			return
		}
		g.ethertype(etherMPLS, t, f)
	}
	if n.hasNum {
		g.seq(lt, lf, first, func(t, f int) { g.netEq(0, 4, 0xfffff000, n.num<<12, t, f) })
	} else {
		first(lt, lf)
	}
	g.nh += 4
	g.mplsDepth++
}
