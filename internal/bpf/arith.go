package bpf

import (
	xbpf "golang.org/x/net/bpf"
)

// Packet accessors (proto[off:size]), arithmetic and relations.

type arith interface{}

type (
	numArith  struct{ v uint32 }
	lenArith  struct{}
	loadArith struct {
		proto     string // ether ip ip6 arp rarp tcp udp icmp icmp6 sctp
		off, size uint32
		idx       arith // the index expression as written
	}
	binArith struct {
		op   string
		l, r arith
	}
	relNode struct {
		op   string
		l, r arith
	}
)

var accessors = map[string]bool{
	"ether": true, "ip": true, "ip6": true, "arp": true, "rarp": true, "tcp": true,
	"udp": true, "icmp": true, "icmp6": true, "sctp": true,
}

// libpcap's named constants (scanner.l).
var namedConsts = map[string]uint32{
	"icmptype": 0, "icmpcode": 1,
	"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
	"icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
	"icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
	"icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
	"icmp6type": 0, "icmp6code": 1,
	"icmp6-echo": 128, "icmp6-echoreply": 129,
	"icmp6-routersolicit": 133, "icmp6-routeradvert": 134,
	"icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136,
	"tcpflags": 13,
	"tcp-fin":  0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08,
	"tcp-ack": 0x10, "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
}

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return t.kind == tOp && t.text == s
}

// arithStart reports whether the current word begins an arithmetic
// expression: a number, a named constant, len, or an accessor followed by [.
func (p *parser) arithStart() bool {
	t := p.peek()
	if t.kind != tWord {
		return false
	}
	if accessors[t.text] {
		n := p.peekN(1)
		return n.kind == tOp && n.text == "["
	}
	if t.text == "len" || t.text == "length" {
		return true
	}
	if _, ok := namedConsts[t.text]; ok {
		return true
	}
	_, ok := parseNum(t.text)
	return ok
}

var relOps = map[string]bool{">": true, "<": true, ">=": true, "<=": true, "=": true, "==": true, "!=": true}

func (p *parser) parseRelation() (node, error) {
	l, err := p.parseArith(0)
	if err != nil {
		return nil, err
	}
	op := p.peek()
	if op.kind != tOp || !relOps[op.text] {
		return nil, errAt(op, "relational operator expected")
	}
	p.next()
	r, err := p.parseArith(0)
	if err != nil {
		return nil, err
	}
	return relNode{op: op.text, l: l, r: r}, nil
}

// Binary operator levels, lowest first, as in libpcap's grammar.
// '%' has no declared precedence in libpcap's grammar, so yacc always
// shifts it: "a + b % c + d" is a + (b % (c + d)); see parseOperand.
var arithLevels = [][]string{{"|"}, {"&"}, {"<<", ">>"}, {"+", "-"}, {"*", "/"}}

func (p *parser) arithOp(level int) (string, bool) {
	t := p.peek()
	if t.kind != tOp && t.kind != tSlash {
		return "", false
	}
	for _, o := range arithLevels[level] {
		if t.text == o {
			return o, true
		}
	}
	return "", false
}

func (p *parser) parseArith(level int) (arith, error) {
	if level == len(arithLevels) {
		return p.parseOperand()
	}
	l, err := p.parseArith(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.arithOp(level)
		if !ok {
			return l, nil
		}
		opTok := p.next()
		r, err := p.parseArith(level + 1)
		if err != nil {
			return nil, err
		}
		if l, err = p.binary(opTok, op, l, r); err != nil {
			return nil, err
		}
	}
}

// parseOperand parses an atom, and if '%' follows, the rest of the
// arithmetic expression as its right operand.
func (p *parser) parseOperand() (arith, error) {
	l, err := p.parseArithAtom()
	if err != nil || !p.isOp("%") {
		return l, err
	}
	opTok := p.next()
	r, err := p.parseArith(0)
	if err != nil {
		return nil, err
	}
	return p.binary(opTok, "%", l, r)
}

func (p *parser) binary(opTok token, op string, l, r arith) (arith, error) {
	div := op == "/" || op == "%"
	shift := op == "<<" || op == ">>"
	if isConstExpr(r) {
		v, ok := constValue(r)
		switch {
		case !ok:
			return nil, errAt(opTok, "constant expression divides by zero or shifts by more than 31 bits")
		case div && v == 0:
			return nil, errAt(opTok, "division by zero")
		case shift && v > 31:
			return nil, errAt(opTok, "shift by more than 31 bits")
		}
	} else if div {
		// libpcap misreports some of these as division by zero.
		return nil, errAt(opTok, "division by a non-constant is not supported")
	}
	if isConstExpr(l) {
		if _, ok := constValue(l); !ok {
			return nil, errAt(opTok, "constant expression divides by zero or shifts by more than 31 bits")
		}
	}
	// libpcap checks the first instruction of the right operand's code
	// (a literal: the left-most number, or an accessor's index) for
	// division by zero and oversized shifts; reject what it rejects.
	if v, ok := firstLiteral(r); ok {
		if v == 0 && div {
			return nil, errAt(opTok, "division by zero")
		}
		if v > 31 && shift {
			return nil, errAt(opTok, "shift by more than 31 bits")
		}
	}
	return binArith{op: op, l: l, r: r}, nil
}

// isConstExpr reports whether a contains no packet data or length.
func isConstExpr(a arith) bool {
	switch a := a.(type) {
	case numArith:
		return true
	case binArith:
		return isConstExpr(a.l) && isConstExpr(a.r)
	}
	return false
}

func (p *parser) parseArithAtom() (arith, error) {
	t := p.peek()
	switch {
	case t.kind == tLParen:
		p.next()
		a, err := p.parseArith(0)
		if err != nil {
			return nil, err
		}
		if c := p.peek(); c.kind != tRParen {
			return nil, errAt(c, "syntax error: expected )")
		}
		p.next()
		return a, nil
	case t.kind != tWord:
		return nil, errAt(t, "syntax error: number or packet accessor expected")
	case t.text == "len" || t.text == "length":
		p.next()
		return lenArith{}, nil
	case accessors[t.text]:
		p.next()
		if !p.isOp("[") {
			return nil, errAt(p.peek(), "syntax error: [ expected")
		}
		p.next()
		idxTok := p.peek()
		idx, err := p.parseArith(0)
		if err != nil {
			return nil, err
		}
		off, ok := constValue(idx)
		if !ok {
			return nil, errAt(idxTok, "only constant offsets are supported in packet accessors")
		}
		size := uint32(1)
		if p.isOp(":") {
			p.next()
			st := p.next()
			v, ok := parseNum(st.text)
			if st.kind != tWord || !ok || (v != 1 && v != 2 && v != 4) {
				return nil, errAt(st, "data size must be 1, 2, or 4")
			}
			size = v
		}
		if !p.isOp("]") {
			return nil, errAt(p.peek(), "syntax error: ] expected")
		}
		p.next()
		return loadArith{proto: t.text, off: off, size: size, idx: idx}, nil
	}
	if v, ok := namedConsts[t.text]; ok {
		p.next()
		return numArith{v}, nil
	}
	if v, ok := parseNum(t.text); ok {
		p.next()
		return numArith{v}, nil
	}
	return nil, errAt(t, "syntax error: number or packet accessor expected")
}

// effectiveProtos adds the protocols whose checks libpcap generates for a:
// those of its left-most operand chain ("ether" needs none).
func effectiveProtos(a arith, m map[string]bool) {
	switch a := a.(type) {
	case loadArith:
		if a.proto != "ether" {
			m[a.proto] = true
		}
	case binArith:
		effectiveProtos(a.l, m)
	}
}

// usesARP reports whether a reads arp[] or rarp[] anywhere.
func usesARP(a arith) bool {
	switch a := a.(type) {
	case loadArith:
		return a.proto == "arp" || a.proto == "rarp" || usesARP(a.idx)
	case binArith:
		return usesARP(a.l) || usesARP(a.r)
	}
	return false
}

func firstLiteral(a arith) (uint32, bool) {
	switch a := a.(type) {
	case numArith:
		return a.v, true
	case loadArith:
		return firstLiteral(a.idx)
	case binArith:
		return firstLiteral(a.l)
	}
	return 0, false
}

func constValue(a arith) (uint32, bool) {
	switch a := a.(type) {
	case numArith:
		return a.v, true
	case binArith:
		l, ok1 := constValue(a.l)
		r, ok2 := constValue(a.r)
		if !ok1 || !ok2 {
			return 0, false
		}
		switch a.op {
		case "+":
			return l + r, true
		case "-":
			return l - r, true
		case "*":
			return l * r, true
		case "/":
			if r == 0 {
				return 0, false
			}
			return l / r, true
		case "%":
			if r == 0 {
				return 0, false
			}
			return l % r, true
		case "&":
			return l & r, true
		case "|":
			return l | r, true
		case "<<":
			if r > 31 {
				return 0, false
			}
			return l << r, true
		case ">>":
			if r > 31 {
				return 0, false
			}
			return l >> r, true
		}
	}
	return 0, false
}

// ---- code generation ----

func (g *gen) guard(proto string, lt, lf int) {
	switch proto {
	case "ether":
		g.jumpAlways(lt)
	case "ip":
		g.ethertype(etherIP, lt, lf)
	case "ip6":
		g.ethertype(etherIP6, lt, lf)
	case "arp":
		g.ethertype(etherARP, lt, lf)
	case "rarp":
		g.ethertype(etherRARP, lt, lf)
	case "icmp6":
		g.seq(lt, lf,
			func(t, f int) { g.ethertype(etherIP6, t, f) },
			func(t, f int) { g.netEq(6, 1, 0xff, ipprotoICMP6, t, f) })
	default: // transport over IPv4, first fragment only
		num := map[string]uint32{"tcp": ipprotoTCP, "udp": ipprotoUDP, "icmp": ipprotoICMP, "sctp": ipprotoSCTP}[proto]
		g.seq(lt, lf,
			func(t, f int) { g.ethertype(etherIP, t, f) },
			func(t, f int) { g.netEq(9, 1, 0xff, num, t, f) },
			g.firstFragment)
	}
}

var aluOps = map[string]xbpf.ALUOp{
	"+": xbpf.ALUOpAdd, "-": xbpf.ALUOpSub, "*": xbpf.ALUOpMul, "/": xbpf.ALUOpDiv,
	"%": xbpf.ALUOpMod, "&": xbpf.ALUOpAnd, "|": xbpf.ALUOpOr, "<<": xbpf.ALUOpShiftLeft,
	">>": xbpf.ALUOpShiftRight,
}

var jumpTests = map[string]xbpf.JumpTest{
	">": xbpf.JumpGreaterThan, "<": xbpf.JumpLessThan, ">=": xbpf.JumpGreaterOrEqual,
	"<=": xbpf.JumpLessOrEqual, "=": xbpf.JumpEqual, "==": xbpf.JumpEqual, "!=": xbpf.JumpNotEqual,
}

// evalA emits code leaving a's value in A, using scratch slots from depth.
func (g *gen) evalA(a arith, depth int) {
	if depth >= vlanReg {
		g.fail("arithmetic expression too deep")
		return
	}
	if v, ok := constValue(a); ok {
		g.emit(xbpf.LoadConstant{Dst: xbpf.RegA, Val: v})
		return
	}
	switch a := a.(type) {
	case lenArith:
		g.emit(xbpf.LoadExtension{Num: xbpf.ExtLen})
	case loadArith:
		switch a.proto {
		case "ether":
			g.emit(xbpf.LoadAbsolute{Off: a.off, Size: int(a.size)})
		case "ip", "ip6", "arp", "rarp":
			g.ldNet(int(a.off), int(a.size))
		case "icmp6":
			g.ldNet(40+int(a.off), int(a.size))
		default:
			g.ldxTransport()
			g.emit(xbpf.LoadIndirect{Off: g.nh + a.off, Size: int(a.size)})
		}
	case binArith:
		g.evalA(a.l, depth)
		if v, ok := constValue(a.r); ok {
			g.emit(xbpf.ALUOpConstant{Op: aluOps[a.op], Val: v})
			return
		}
		g.emit(xbpf.StoreScratch{Src: xbpf.RegA, N: depth})
		g.evalA(a.r, depth+1)
		g.emit(xbpf.TAX{})
		g.emit(xbpf.LoadScratch{Dst: xbpf.RegA, N: depth})
		g.emit(xbpf.ALUOpX{Op: aluOps[a.op]})
	}
}

func (g *gen) relation(n relNode, lt, lf int) {
	if g.mplsDepth > 0 && (usesARP(n.l) || usesARP(n.r)) {
		// libpcap generates (then drops) a check for every accessor.
		g.fail("unsupported protocol over mpls")
		return
	}
	// As libpcap: an arithmetic operator keeps only its left operand's
	// protocol check, so a relation checks the protocol of the left-most
	// accessor of each side ("ip[0] + tcp[0] = 5" checks only IPv4).
	var guards []string
	for _, side := range []arith{n.l, n.r} {
		m := map[string]bool{}
		effectiveProtos(side, m)
		for pr := range m {
			guards = append(guards, pr)
		}
	}
	var parts []func(int, int)
	seen := map[string]bool{}
	for _, pr := range guards {
		if seen[pr] {
			continue
		}
		seen[pr] = true
		pr := pr
		parts = append(parts, func(t, f int) { g.guard(pr, t, f) })
	}
	parts = append(parts, func(t, f int) {
		g.evalA(n.l, 0)
		if v, ok := constValue(n.r); ok {
			g.jump(jumpTests[n.op], v, t, f)
			return
		}
		g.emit(xbpf.StoreScratch{Src: xbpf.RegA, N: 0})
		g.evalA(n.r, 1)
		g.emit(xbpf.TAX{})
		g.emit(xbpf.LoadScratch{Dst: xbpf.RegA, N: 0})
		g.jumpX(jumpTests[n.op], t, f)
	})
	g.seq(lt, lf, parts...)
}
