package bpf

import (
	"errors"
	"testing"

	xbpf "golang.org/x/net/bpf"
)

func asSyntax(err error, se **SyntaxError) bool { return errors.As(err, se) }

func TestSyntaxErrors(t *testing.T) {
	cases := []struct {
		filter string
		pos    int
		word   string
	}{
		{"tcp[tcp[0]] = 1", 4, "tcp"},
		{"ip[0] ^ 1 = 2", 6, "^"},
		{"ip[2:3] = 1", 5, "3"},
		{"ip[0] / 0 = 1", 6, "/"},
		{"host foo", 5, "foo"},
		{"port http", 5, "http"},
		{"tcp or 80", 7, "80"},
		{"ether host 1.2.3.4", 11, "1.2.3.4"},
		{"vlan 10 or 20", 11, "20"},
		{"vlan 4096", 0, "vlan"},
		{"mpls 0x100000", 0, "mpls"},
		{"mpls and vlan", 9, "vlan"},
		{"mpls and arp", 9, "arp"},
		{"mpls and host 1.2.3.4 and arp[0] = 1", 26, "arp"},
		{"mpls and ether proto 0x800 or 0x806", 30, "0x806"},
		{"mpls and (arp[0] = 1)", 10, "arp"},
		{"vlan (tcp)", 6, "tcp"},
		{"host 1.2.3.4 or", 15, ""},
		{"(tcp", 4, ""},
		{"tcp)", 3, ")"},
		{"port 70000", 5, "70000"},
		{"net 10.1.2.3/8", 4, "10.1.2.3"},
		{"ip port 80", 8, "80"},
		{"tcp host 1.2.3.4", 9, "1.2.3.4"},
	}
	for _, c := range cases {
		_, err := Compile(c.filter, EN10MB, 0)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: want *SyntaxError, got %v", c.filter, err)
			continue
		}
		if se.Pos != c.pos || se.Word != c.word {
			t.Errorf("%q: got pos %d word %q (%v), want pos %d word %q", c.filter, se.Pos, se.Word, se, c.pos, c.word)
		}
	}
	// libpcap has no VLAN or MPLS support for Linux cooked captures.
	for _, c := range []struct {
		filter string
		pos    int
	}{{"vlan", 0}, {"tcp and vlan 10", 8}, {"mpls", 0}} {
		_, err := Compile(c.filter, LinuxSLL2, 0)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Pos != c.pos {
			t.Errorf("LINUX_SLL2 %q: want a *SyntaxError at %d, got %v", c.filter, c.pos, err)
		}
	}
}

func TestLongJumps(t *testing.T) {
	// Many alternatives push the accept label beyond an 8-bit jump offset.
	f := "host 1.2.3.4"
	for i := 0; i < 60; i++ {
		f += " or 10.0.0.1"
	}
	f += " or port 80"
	prog, err := Compile(f, EN10MB, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := xbpf.NewVM(prog); err != nil {
		t.Fatal(err)
	}
	if _, err := xbpf.Assemble(prog); err != nil {
		t.Fatal(err)
	}
	if len(prog) < 300 {
		t.Fatalf("expected a long program, got %d", len(prog))
	}
}

// TestSupported: forms inside the documented subset must compile (the
// differential test alone would let a wrong rejection pass).
func TestSupported(t *testing.T) {
	for _, f := range []string{
		"", "ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp", "pim", "ah", "esp", "vrrp",
		"host 1.2.3.4", "src host 1.2.3.4 or 1.2.3.5", "dst and src host ::1", "src 1.2.3.4", "ip6 host fe80::1",
		"net 10.0.0.0/8", "net 10", "net 172.16 mask 255.240.0.0", "arp net 192.168/16", "net 2001:db8::/32",
		"port 80", "tcp port 80 or 443", "udp src portrange 50-60", "sctp dst port 0x50", "tcp portrange 25",
		"proto 6", "ip proto 1 or 17", "ip6 proto 58",
		"! icmp && ! arp", "tcp src port 80 || tcp dst port 80", "not (tcp or udp) and !arp",
		"tcp[13] & 2 != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[13] = 18 || tcp[13] = 2",
		"icmp[icmptype] = icmp-echo", "udp[8:2] = 0x1234", "ip[2:2] - 20 > 5 * 2", "(tcp[12] & 0xf0) >> 2 > 20",
		"len > 100", "greater 100", "less 60", "ether[0] & 1 != 0", "icmp6[icmp6type] = icmp6-echo",
		"ether host 00:11:22:33:44:55", "ether src 0:1:2:3:4:5", "ether broadcast", "multicast", "ether proto 0x88cc",
		"host 1.2.3.4 and (10.0.0.1 or 1.2.3.5)", "port 80 and (tcp) or 443", "port 80 and len > 100",
		"vlan", "vlan 10", "vlan (10)", "vlan and vlan 20 and tcp port 80", "not vlan", "mpls", "mpls 100 and mpls and ip",
	} {
		if _, err := Compile(f, EN10MB, 0); err != nil {
			t.Errorf("%q: %v", f, err)
		}
	}
}
