package bpf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// SyntaxError reports a filter the compiler does not accept: either invalid
// for libpcap too, or outside the supported subset. Pos is the byte offset of
// Word in the filter string (len(filter) and Word "" at the end of input).
type SyntaxError struct {
	Pos  int
	Word string
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Word == "" {
		return fmt.Sprintf("filter: %s at end of expression (position %d)", e.Msg, e.Pos)
	}
	return fmt.Sprintf("filter: %s at position %d (%q)", e.Msg, e.Pos, e.Word)
}

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tLParen
	tRParen
	tAnd
	tOr
	tNot
	tSlash
	tOp
)

type token struct {
	kind tokKind
	pos  int
	text string
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == ':' || c == '-' || c == '_'
}

func isWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '.'
}

func lex(s string) ([]token, error) {
	var toks []token
	i, depth := 0, 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, i, "("})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, i, ")"})
			i++
		case c == '/':
			toks = append(toks, token{tSlash, i, "/"})
			i++
		case c == '!' && (i+1 >= len(s) || s[i+1] != '='):
			toks = append(toks, token{tNot, i, "!"})
			i++
		case c == '[':
			depth++
			toks = append(toks, token{tOp, i, "["})
			i++
		case c == ']':
			depth--
			toks = append(toks, token{tOp, i, "]"})
			i++
		case c == ':' && depth > 0:
			toks = append(toks, token{tOp, i, ":"})
			i++
		case strings.IndexByte("+-*%<>=!&|", c) >= 0 && !strings.HasPrefix(s[i:], "&&") && !strings.HasPrefix(s[i:], "||"):
			n := 1
			if i+1 < len(s) {
				switch s[i : i+2] {
				case "<<", ">>", "<=", ">=", "==", "!=":
					n = 2
				}
			}
			toks = append(toks, token{tOp, i, s[i : i+n]})
			i += n
		case c == '&' && i+1 < len(s) && s[i+1] == '&':
			toks = append(toks, token{tAnd, i, "&&"})
			i += 2
		case c == '|' && i+1 < len(s) && s[i+1] == '|':
			toks = append(toks, token{tOr, i, "||"})
			i += 2
		case isWordStart(c):
			j := i
			for j < len(s) && isWordByte(s[j]) && !(depth > 0 && s[j] == ':') {
				j++
			}
			w := s[i:j]
			k := tWord
			switch w {
			case "and":
				k = tAnd
			case "or":
				k = tOr
			case "not":
				k = tNot
			}
			toks = append(toks, token{k, i, w})
			i = j
		default:
			j := i + 1
			for j < len(s) && !isWordByte(s[j]) && s[j] != ' ' && s[j] != '(' && s[j] != ')' {
				j++
			}
			return nil, &SyntaxError{Pos: i, Word: s[i:j], Msg: "unsupported operator or character"}
		}
	}
	toks = append(toks, token{tEOF, len(s), ""})
	return toks, nil
}

// Qualifiers.
const (
	pDefault = iota
	pIP
	pIP6
	pARP
	pRARP
	pTCP
	pUDP
	pSCTP
	pICMP
	pICMP6
	pEther
)

var protoNames = map[string]int{
	"ip": pIP, "ip6": pIP6, "arp": pARP, "rarp": pRARP, "tcp": pTCP,
	"udp": pUDP, "sctp": pSCTP, "icmp": pICMP, "icmp6": pICMP6, "ether": pEther,
}

const (
	dDefault = iota // src or dst
	dSrc
	dDst
	dAnd // src and dst
)

const (
	aDefault = iota
	aHost
	aNet
	aPort
	aPortrange
	aProto
)

var addrNames = map[string]int{"host": aHost, "net": aNet, "port": aPort, "portrange": aPortrange, "proto": aProto}

// qual is the qualifier set a bare id inherits; valid=false means a bare id
// is not allowed here (libpcap: syntax error).
type qual struct {
	proto, dir, addr int
	dirSet           bool // a direction was written (even "src or dst")
	valid            bool
}

// AST.
type node interface{}

type (
	andNode   struct{ l, r node }
	orNode    struct{ l, r node }
	notNode   struct{ x node }
	protoNode struct{ proto int }
	// hostNode matches an IPv4 (v6=false, addr in [0:4]) or IPv6 address under mask.
	hostNode struct {
		proto, dir int
		v6         bool
		addr, mask [16]byte
	}
	portNode struct {
		proto, dir int
		lo, hi     uint32
	}
	etherCastNode struct{ multicast bool }
	etherHostNode struct {
		dir int
		mac [6]byte
	}
	etherProtoNode struct{ num uint32 }
	// vlanNode is "vlan [ID]", mplsNode "mpls [LABEL]".
	vlanNode struct {
		num    uint32
		hasNum bool
	}
	mplsNode struct {
		num    uint32
		hasNum bool
	}
	// atNode records the source position of a primitive, for errors
	// found while generating code (libpcap reports those at compile time
	// too: "unsupported protocol over mpls").
	atNode struct {
		tok token
		x   node
	}
	// ipProtoNode is "[ip|ip6] proto N"; proto is pDefault, pIP or pIP6.
	ipProtoNode struct {
		proto int
		num   uint32
	}
)

type parser struct {
	toks []token
	i    int
	lt   LinkType
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekN(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func errAt(t token, msg string) error {
	return &SyntaxError{Pos: t.pos, Word: t.text, Msg: msg}
}

func isKeyword(w string) bool {
	_, a := protoNames[w]
	_, b := addrNames[w]
	_, c := abbrevProtos[w]
	return a || b || c || w == "src" || w == "dst" || w == "mask" || w == "broadcast" || w == "multicast" ||
		w == "vlan" || w == "mpls"
}

// abbrevProtos are libpcap's IP protocol abbreviations usable only alone.
var abbrevProtos = map[string]ipProtoNode{
	"igmp": {pIP, 2}, "igrp": {pIP, 9}, "vrrp": {pIP, 112}, "carp": {pIP, 112},
	"pim": {pDefault, 103}, "ah": {pDefault, 51}, "esp": {pDefault, 50},
}

func parse(s string, lt LinkType) (node, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, lt: lt}
	if p.peek().kind == tEOF {
		return nil, nil // empty filter: accept everything
	}
	n, _, err := p.parseExpr(qual{})
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, errAt(t, "syntax error: unexpected word")
	}
	return n, nil
}

// startsID reports whether, after any run of not/!/(, the next token is a
// bare (non-keyword) word: libpcap's "expr and id" production.
func (p *parser) startsID() bool {
	for j := p.i; j < len(p.toks); j++ {
		switch p.toks[j].kind {
		case tNot, tLParen:
			continue
		case tWord:
			w := p.toks[j].text
			nx := p.toks[j+1] // tEOF terminates toks
			if isKeyword(w) || w == "len" || w == "length" || w == "greater" || w == "less" {
				return false
			}
			if _, ok := namedConsts[w]; ok {
				return false
			}
			if nx.kind == tOp { // accessor [, arithmetic or relational operator
				return false
			}
			if nx.kind == tSlash && !strings.ContainsAny(w, ".:") {
				return false // division
			}
			return true
		default:
			return false
		}
	}
	return false
}

func (p *parser) parseExpr(q qual) (node, qual, error) {
	n, q, err := p.parseTerm(q)
	if err != nil {
		return nil, q, err
	}
	for {
		op := p.peek()
		if op.kind != tAnd && op.kind != tOr {
			return n, q, nil
		}
		p.next()
		var r node
		if p.startsID() {
			if !q.valid {
				return nil, q, errAt(p.peek(), "syntax error: value without a qualifier")
			}
			idTok := p.peek()
			r, err = p.parseID(q)
			r = atNode{tok: idTok, x: r}
		} else {
			r, q, err = p.parseTerm(q)
		}
		if err != nil {
			return nil, q, err
		}
		if op.kind == tAnd {
			n = andNode{n, r}
		} else {
			n = orNode{n, r}
		}
	}
}

func (p *parser) parseTerm(q qual) (node, qual, error) {
	t := p.peek()
	switch t.kind {
	case tNot:
		p.next()
		x, q2, err := p.parseTerm(q)
		if err != nil {
			return nil, q2, err
		}
		return notNode{x}, q2, nil
	case tLParen:
		save := p.i
		rel, errRel := p.parseRelation()
		if errRel == nil {
			return atNode{tok: t, x: rel}, qual{}, nil
		}
		p.i = save
		p.next()
		inner, _, err := p.parseExpr(q)
		if err != nil {
			se1, ok1 := errRel.(*SyntaxError)
			se2, ok2 := err.(*SyntaxError)
			if ok1 && ok2 && se1.Pos > se2.Pos {
				err = errRel
			}
		}
		if err != nil {
			return nil, q, err
		}
		if c := p.peek(); c.kind != tRParen {
			return nil, q, errAt(c, "syntax error: expected )")
		}
		p.next()
		return inner, q, nil
	case tWord:
		n, q, err := p.parseWordTerm(q)
		if err != nil {
			return nil, q, err
		}
		return atNode{tok: t, x: n}, q, nil
	case tEOF:
		return nil, q, errAt(t, "syntax error: expression expected")
	default:
		return nil, q, errAt(t, "syntax error: unexpected word")
	}
}

// parseWordTerm parses a term that starts with a word: a relation,
// greater/less, or a primitive.
func (p *parser) parseWordTerm(q qual) (node, qual, error) {
	t := p.peek()
	if p.arithStart() {
		n, err := p.parseRelation()
		return n, qual{}, err
	}
	if t.text == "greater" || t.text == "less" {
		p.next()
		v := p.next()
		n, ok := parseNum(v.text)
		if v.kind != tWord || !ok {
			return nil, q, errAt(v, "number expected")
		}
		return relNode{op: map[string]string{"greater": ">=", "less": "<="}[t.text], l: lenArith{}, r: numArith{n}}, qual{}, nil
	}
	return p.parsePrimitive()
}

func (p *parser) parsePrimitive() (node, qual, error) {
	nq := qual{valid: true}
	t := p.peek()
	if t.text == "broadcast" || t.text == "multicast" {
		p.next()
		if p.lt != EN10MB {
			return nil, nq, errAt(t, "link-layer broadcast/multicast is supported only on Ethernet")
		}
		return etherCastNode{multicast: t.text == "multicast"}, qual{}, nil
	}
	if n, ok := abbrevProtos[t.text]; ok {
		p.next()
		return n, qual{}, nil
	}
	if t.text == "vlan" || t.text == "mpls" {
		return p.parseVLANMPLS()
	}
	pr, isProto := protoNames[t.text]
	if isProto {
		p.next()
		nq.proto = pr
	}
	dirSeen := false
	if w := p.peek(); w.kind == tWord && (w.text == "src" || w.text == "dst") {
		p.next()
		dirSeen = true
		nq.dirSet = true
		nq.dir = dSrc
		if w.text == "dst" {
			nq.dir = dDst
		}
		other := "dst"
		if w.text == "dst" {
			other = "src"
		}
		if c := p.peek(); (c.kind == tOr || c.kind == tAnd) && p.peekN(1).kind == tWord && p.peekN(1).text == other {
			p.next()
			p.next()
			if c.kind == tOr {
				nq.dir = dDefault
			} else {
				nq.dir = dAnd
			}
		}
	}
	addrSeen := false
	if w := p.peek(); w.kind == tWord {
		if a, ok := addrNames[w.text]; ok {
			p.next()
			addrSeen = true
			nq.addr = a
		}
	}
	if w := p.peek(); !dirSeen && !addrSeen && w.kind == tWord && (w.text == "broadcast" || w.text == "multicast") &&
		(!isProto || nq.proto == pEther) {
		p.next()
		if p.lt != EN10MB {
			return nil, nq, errAt(w, "link-layer broadcast/multicast is supported only on Ethernet")
		}
		return etherCastNode{multicast: w.text == "multicast"}, qual{}, nil
	}
	if !dirSeen && !addrSeen {
		if isProto && pr == pEther {
			return nil, nq, errAt(t, "ether needs host, src, dst, proto, broadcast or multicast")
		}
		if isProto {
			// pname: a protocol on its own; a bare id may not follow.
			return protoNode{pr}, qual{}, nil
		}
		return nil, nq, errAt(t, "unsupported or unknown primitive")
	}
	n, err := p.parseID(nq)
	return n, nq, err
}

// parseVLANMPLS parses "vlan [pnum]" and "mpls [pnum]", where pnum is a
// number, possibly in parentheses. As in libpcap they take no qualifier
// and a bare value may not follow them ("vlan 10 or 20" is an error).
func (p *parser) parseVLANMPLS() (node, qual, error) {
	t := p.next()
	if p.lt != EN10MB {
		what := map[string]string{"vlan": "VLAN", "mpls": "MPLS"}[t.text]
		return nil, qual{}, errAt(t, "no "+what+" support for "+p.lt.String()+" (libpcap rejects it too)")
	}
	var num uint32
	hasNum := false
	depth := 0
	for p.peek().kind == tLParen {
		p.next()
		depth++
	}
	if v, ok := parseNum(p.peek().text); ok && p.peek().kind == tWord {
		p.next()
		num, hasNum = v, true
	} else if depth > 0 {
		return nil, qual{}, errAt(p.peek(), "number expected")
	}
	for ; depth > 0; depth-- {
		if c := p.peek(); c.kind != tRParen {
			return nil, qual{}, errAt(c, "syntax error: expected )")
		}
		p.next()
	}
	if t.text == "vlan" {
		if hasNum && num > 0x0fff {
			return nil, qual{}, errAt(t, fmt.Sprintf("VLAN tag %d greater than maximum 4095", num))
		}
		return vlanNode{num: num, hasNum: hasNum}, qual{}, nil
	}
	if hasNum && num > 0xfffff {
		return nil, qual{}, errAt(t, fmt.Sprintf("MPLS label %d greater than maximum 1048575", num))
	}
	return mplsNode{num: num, hasNum: hasNum}, qual{}, nil
}

// parseID parses libpcap's "id": not id | ( pid ) | bare value.
func (p *parser) parseID(q qual) (node, error) {
	t := p.peek()
	switch t.kind {
	case tNot:
		p.next()
		x, err := p.parseID(q)
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	case tLParen:
		p.next()
		if w := p.peek(); w.kind != tWord {
			return nil, errAt(w, "syntax error: value expected")
		}
		n, err := p.parseBare(q)
		if err != nil {
			return nil, err
		}
		for {
			op := p.peek()
			if op.kind != tAnd && op.kind != tOr {
				break
			}
			p.next()
			r, err := p.parseID(q)
			if err != nil {
				return nil, err
			}
			if op.kind == tAnd {
				n = andNode{n, r}
			} else {
				n = orNode{n, r}
			}
		}
		if c := p.peek(); c.kind != tRParen {
			return nil, errAt(c, "syntax error: expected )")
		}
		p.next()
		return n, nil
	case tWord:
		return p.parseBare(q)
	}
	return nil, errAt(t, "syntax error: value expected")
}

// parseNum parses a libpcap NUM: 0x hex, leading-0 octal, else decimal.
func parseNum(s string) (uint32, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	d := s
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		base, d = 16, s[2:]
	} else if len(s) > 1 && s[0] == '0' {
		base, d = 8, s[1:]
	}
	if d == "" || d[0] == '+' || d[0] == '-' {
		return 0, false
	}
	v, err := strconv.ParseUint(d, base, 32)
	return uint32(v), err == nil
}

// parseV4 parses 1-4 dotted decimal octets (libpcap __pcap_atoin) and returns
// the value left-aligned and the number of bits given.
func parseV4(s string) (uint32, int, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return 0, 0, false
	}
	var v uint32
	for _, part := range parts {
		if part == "" || len(part) > 3 {
			return 0, 0, false
		}
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, 0, false
			}
		}
		n, _ := strconv.Atoi(part)
		if n > 255 {
			return 0, 0, false
		}
		v = v<<8 | uint32(n)
	}
	bits := 8 * len(parts)
	if bits < 32 {
		v <<= 32 - bits
	}
	return v, bits, true
}

func put32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func (p *parser) parseBare(q qual) (node, error) {
	t := p.next()
	w := t.text
	if t.kind != tWord || isKeyword(w) {
		return nil, errAt(t, "syntax error: value expected")
	}
	// Optional /LEN or mask MASK.
	var lenTok, maskTok *token
	if c := p.peek(); c.kind == tSlash {
		p.next()
		lt := p.next()
		if lt.kind != tWord {
			return nil, errAt(lt, "syntax error: prefix length expected")
		}
		lenTok = &lt
	} else if c.kind == tWord && c.text == "mask" {
		p.next()
		mt := p.next()
		if mt.kind != tWord {
			return nil, errAt(mt, "syntax error: mask expected")
		}
		maskTok = &mt
	}
	addr := q.addr
	if (lenTok != nil || maskTok != nil) && !strings.ContainsAny(w, ".:") {
		return nil, errAt(t, "/len and mask need a dotted network address")
	}
	if (lenTok != nil || maskTok != nil) && addr != aNet {
		return nil, errAt(t, "/len and mask are only allowed with net")
	}
	if q.proto == pEther {
		return p.etherValue(t, q)
	}
	switch addr {
	case aProto:
		if q.proto != pDefault && q.proto != pIP && q.proto != pIP6 {
			return nil, errAt(t, "proto is supported only as proto, ip proto or ip6 proto")
		}
		if q.dirSet {
			return nil, errAt(t, "src/dst cannot qualify proto")
		}
		v, ok := parseNum(w)
		if !ok || v > 255 {
			return nil, errAt(t, "protocol number 0-255 expected (names are not supported)")
		}
		return ipProtoNode{proto: q.proto, num: v}, nil
	case aPort, aPortrange:
		switch q.proto {
		case pDefault, pTCP, pUDP, pSCTP:
		default:
			return nil, errAt(t, "port and portrange take only tcp, udp or sctp as protocol")
		}
		var lo, hi uint32
		var ok bool
		if addr == aPort {
			lo, ok = parseNum(w)
			hi = lo
		} else {
			a, b, found := strings.Cut(w, "-")
			if !found {
				b = a
			}
			var ok2 bool
			lo, ok = parseNum(a)
			hi, ok2 = parseNum(b)
			ok = ok && ok2
		}
		if !ok {
			return nil, errAt(t, "numeric port expected (service names are not supported)")
		}
		if lo > 65535 || hi > 65535 {
			return nil, errAt(t, "port number out of range")
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		return portNode{proto: q.proto, dir: q.dir, lo: lo, hi: hi}, nil
	}
	switch q.proto {
	case pDefault, pIP, pIP6, pARP, pRARP:
	default:
		return nil, errAt(t, "this protocol cannot qualify a host or net")
	}
	n := hostNode{proto: q.proto, dir: q.dir}
	if strings.Contains(w, ":") {
		a, err := netip.ParseAddr(w)
		if err != nil || a.Zone() != "" || !a.Is6() {
			return nil, errAt(t, "invalid IPv6 address (host names are not supported)")
		}
		if q.proto != pDefault && q.proto != pIP6 {
			return nil, errAt(t, "IPv6 address with a non-IPv6 protocol")
		}
		if maskTok != nil {
			return nil, errAt(*maskTok, "mask is not supported for IPv6; use /len")
		}
		bits := 128
		if lenTok != nil {
			l, err := strconv.Atoi(lenTok.text)
			if err != nil || l < 0 || l > 128 {
				return nil, errAt(*lenTok, "invalid IPv6 prefix length")
			}
			bits = l
		}
		n.v6 = true
		n.addr = a.As16()
		for i := 0; i < 16; i++ {
			switch {
			case bits >= 8*(i+1):
				n.mask[i] = 0xff
			case bits > 8*i:
				n.mask[i] = byte(0xff << (8 - (bits - 8*i)))
			}
			if n.addr[i]&^n.mask[i] != 0 {
				return nil, errAt(t, "non-network bits set")
			}
		}
		return n, nil
	}
	if q.proto == pIP6 {
		return nil, errAt(t, "ip6 with an IPv4 address")
	}
	v, bits, ok := parseV4(w)
	if !ok {
		return nil, errAt(t, "invalid IPv4 address (host names are not supported)")
	}
	var m uint32
	switch {
	case addr == aNet && lenTok != nil:
		l, err := strconv.Atoi(lenTok.text)
		if err != nil || l < 0 || l > 32 || lenTok.text[0] == '+' {
			return nil, errAt(*lenTok, "invalid IPv4 prefix length")
		}
		if l > 0 {
			m = 0xffffffff << (32 - l)
		}
	case addr == aNet && maskTok != nil:
		mv, _, ok := parseV4(maskTok.text)
		if !ok || !strings.Contains(maskTok.text, ".") {
			return nil, errAt(*maskTok, "invalid IPv4 mask")
		}
		m = mv
	case addr == aNet:
		if bits == 32 {
			m = 0xffffffff
		} else {
			m = 0xffffffff << (32 - bits)
		}
	default: // host or default
		if bits != 32 {
			return nil, errAt(t, "host needs a full dotted-quad IPv4 address (use net for prefixes)")
		}
		m = 0xffffffff
	}
	if v&^m != 0 {
		return nil, errAt(t, "non-network bits set")
	}
	put32(n.addr[:4], v)
	put32(n.mask[:4], m)
	return n, nil
}

func (p *parser) etherValue(t token, q qual) (node, error) {
	switch q.addr {
	case aProto:
		if q.dirSet {
			return nil, errAt(t, "src/dst cannot qualify proto")
		}
		v, ok := parseNum(t.text)
		if !ok || v > 0xffff {
			return nil, errAt(t, "EtherType number expected (names are not supported)")
		}
		if v <= 1500 {
			return nil, errAt(t, "ether proto values up to 1500 (802.2 LLC) are not supported")
		}
		return etherProtoNode{num: v}, nil
	case aDefault, aHost:
		if p.lt != EN10MB {
			return nil, errAt(t, "Ethernet addresses are supported only on Ethernet")
		}
		parts := strings.FieldsFunc(t.text, func(r rune) bool { return r == ':' })
		if len(parts) != 6 || strings.Count(t.text, ":") != 5 {
			return nil, errAt(t, "Ethernet address xx:xx:xx:xx:xx:xx expected")
		}
		var n etherHostNode
		n.dir = q.dir
		for i, part := range parts {
			v, err := strconv.ParseUint(part, 16, 8)
			if err != nil || len(part) > 2 {
				return nil, errAt(t, "Ethernet address xx:xx:xx:xx:xx:xx expected")
			}
			n.mac[i] = byte(v)
		}
		return n, nil
	}
	return nil, errAt(t, "ether supports only host, src, dst and proto")
}
