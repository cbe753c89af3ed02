package bpf

import (
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	xbpf "golang.org/x/net/bpf"
)

// exprGen builds filter expressions from a small grammar covering the
// supported subset (and a few things just outside it), driven by a byte
// string so that the fuzzer can mutate it.
type exprGen struct {
	src []byte
	i   int
}

func (g *exprGen) pick(n int) int {
	if g.i >= len(g.src) {
		return 0
	}
	b := g.src[g.i]
	g.i++
	return int(b) % n
}

func (g *exprGen) choose(xs ...string) string { return xs[g.pick(len(xs))] }

func (g *exprGen) value(addr string) string {
	switch addr {
	case "port":
		return g.choose("80", "443", "53", "22", "0x50", "70", "1")
	case "portrange":
		return g.choose("1-100", "80-443", "443-80", "50-60", "1-65535", "53")
	case "proto":
		return g.choose("6", "17", "1", "58", "0x84", "47")
	case "net":
		return g.choose("10.0.0.0/8", "1.2.3.0/24", "192.168", "10", "172.16.0.0 mask 255.240.0.0", "2001:db8::/32", "fe80::/10", "0.0.0.0/0")
	}
	return g.choose("1.2.3.4", "1.2.3.5", "10.0.0.1", "192.168.1.10", "::1", "2001:db8::1", "fe80::1")
}

func (g *exprGen) arith(depth int) string {
	if depth <= 0 || g.pick(3) == 0 {
		switch g.pick(4) {
		case 0:
			return g.choose("0", "1", "2", "0x12", "64", "tcp-syn", "icmp-echo", "tcpflags", "17", "0xf0")
		case 1:
			return "len"
		default:
			proto := g.choose("ether", "ip", "ip6", "tcp", "udp", "icmp", "icmp6", "arp", "sctp")
			size := g.choose("", ":1", ":2", ":4")
			return proto + "[" + g.choose("0", "2", "6", "9", "12", "13", "tcpflags", "icmptype", "1+1") + size + "]"
		}
	}
	l, r := g.arith(depth-1), g.arith(depth-1)
	e := l + " " + g.choose("+", "-", "*", "&", "|", "<<", ">>", "%", "/") + " " + r
	if g.pick(2) == 0 {
		e = "(" + e + ")"
	}
	return e
}

func (g *exprGen) prim() (string, string) {
	if g.pick(5) == 0 {
		return g.arith(2) + " " + g.choose("=", "==", "!=", "<", "<=", ">", ">=") + " " + g.arith(1), ""
	}
	if g.pick(4) == 0 {
		return g.choose("ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp",
			"ether broadcast", "multicast", "ether proto 0x86dd", "ether host 00:11:22:33:44:55",
			"ether src 66:77:88:99:aa:bb", "ether dst ff:ff:ff:ff:ff:ff", "greater 60", "less 80", "igmp", "pim", "ah", "esp", "vrrp",
			"vlan", "vlan 10", "vlan 20", "vlan 4095", "mpls", "mpls 100", "mpls 5"), ""
	}
	addr := g.choose("host", "net", "port", "portrange", "", "proto")
	var proto string
	switch addr {
	case "port", "portrange":
		proto = g.choose("", "", "tcp", "udp", "sctp")
	case "proto":
		proto = g.choose("", "ip", "ip6")
	default:
		proto = g.choose("", "", "ip", "ip6", "arp")
	}
	dir := g.choose("", "", "src", "dst", "src or dst", "src and dst")
	parts := []string{}
	for _, p := range []string{proto, dir, addr} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "host")
		addr = "host"
	}
	if addr == "" {
		addr = "host"
	}
	return strings.Join(parts, " ") + " " + g.value(addr), addr
}

func (g *exprGen) expr(depth int) (string, string) {
	if depth <= 0 {
		return g.prim()
	}
	switch g.pick(6) {
	case 0:
		s, a := g.expr(depth - 1)
		return g.choose("not ", "! ") + s, a
	case 1:
		s, a := g.expr(depth - 1)
		return "(" + s + ")", a
	case 2, 3:
		l, _ := g.expr(depth - 1)
		r, b := g.expr(depth - 1)
		return l + " " + g.choose("and", "or", "&&", "||") + " " + r, b
	case 4:
		l, a := g.expr(depth - 1)
		if a == "" {
			return l, a
		}
		return l + " " + g.choose("and", "or") + " " + g.choose("", "not ") + g.value(a), a
	}
	return g.prim()
}

var (
	synthOnce sync.Once
	synthPkts map[LinkType][]packet
)

func checkAgainstLibpcap(t *testing.T, filter string, lt LinkType) (compared bool) {
	ours, err := Compile(filter, lt, 0)
	if err != nil {
		return false
	}
	theirs, errT := libpcapCompile(filter, lt, DefaultSnaplen)
	if errT != nil {
		t.Errorf("%v %q: we accept, libpcap rejects: %v", lt, filter, errT)
		return false
	}
	synthOnce.Do(func() {
		synthPkts = map[LinkType][]packet{EN10MB: syntheticEthernet(), LinuxSLL2: syntheticSLL2()}
	})
	diff, v, err := compare(filter, lt, DefaultSnaplen, ours, theirs, synthPkts[lt])
	if err != nil || diff != "" {
		t.Errorf("%v %q: %v %s", lt, filter, err, diff)
	}
	optDeps.Add(int64(v.optDep))
	return true
}

var optDeps atomic.Int64

func FuzzCompile(f *testing.F) {
	for _, s := range commonFilters {
		f.Add(s)
	}
	f.Add("\x02\x03\x01\x04\x05\x00\x07")
	_, errLook := lookTcpdump()
	f.Fuzz(func(t *testing.T, s string) {
		// 1. Arbitrary input: no panic; accepted programs are valid.
		prog, err := Compile(s, EN10MB, 0)
		if err == nil {
			if _, err := xbpf.NewVM(prog); err != nil {
				t.Fatalf("%q: invalid program: %v", s, err)
			}
			if _, err := xbpf.Assemble(prog); err != nil {
				t.Fatalf("%q: does not assemble: %v", s, err)
			}
		} else if _, ok := err.(*SyntaxError); !ok {
			t.Fatalf("%q: error is not a *SyntaxError: %v", s, err)
		}
		// KernelVLAN accepts exactly what Compile accepts.
		if _, errK := CompileWithOptions(s, EN10MB, 0, Options{KernelVLAN: true}); (errK == nil) != (err == nil) {
			t.Fatalf("%q: Compile %v, KernelVLAN %v", s, err, errK)
		}
		// 2. A grammar-generated expression: agreement with libpcap, on
		// Ethernet and (one in four) Linux cooked v2.
		g := &exprGen{src: []byte(s)}
		lt := EN10MB
		if len(s)%4 == 3 {
			lt = LinuxSLL2
		}
		expr, _ := g.expr(3)
		for _, l := range []LinkType{EN10MB, LinuxSLL2} {
			if _, err := Compile(expr, l, 0); err != nil {
				if _, ok := err.(*SyntaxError); !ok {
					t.Fatalf("%v %q: %v", l, expr, err)
				}
			}
		}
		if errLook == nil {
			checkAgainstLibpcap(t, expr, lt)
		}
	})
}

func lookTcpdump() (string, error) {
	return execLookPath("tcpdump")
}

// TestGeneratedAgreement runs the fuzz grammar with fixed seeds so that a
// plain "go test" covers it.
func TestGeneratedAgreement(t *testing.T) {
	needTcpdump(t)
	r := rand.New(rand.NewSource(1))
	var filters []string
	for i := 0; i < 300; i++ {
		b := make([]byte, 64)
		r.Read(b)
		g := &exprGen{src: b}
		e, _ := g.expr(1 + i%4)
		filters = append(filters, e)
	}
	var fl []corpusFilter
	for _, e := range filters {
		fl = append(fl, corpusFilter{e, DefaultSnaplen, false})
	}
	prefetch(fl, EN10MB)
	prefetch(fl[:len(fl)/4], LinuxSLL2)
	compared := 0
	for i, e := range filters {
		lt := EN10MB
		if i < len(filters)/4 {
			lt = LinuxSLL2
		}
		if checkAgainstLibpcap(t, e, lt) {
			compared++
		}
	}
	t.Logf("generated expressions: %d, compiled by both and agreeing: %d; "+
		"filter×packet verdicts where libpcap's optimizer changes the result and we match its unoptimized program: %d", len(filters), compared, optDeps.Load())
}
