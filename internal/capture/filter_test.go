//go:build linux

package capture

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	ibpf "github.com/triage-sh/triage/internal/bpf"
)

// meta is what the kernel knows of a packet besides its bytes: the fields
// of sockaddr_ll that the SLL2 header carries.
type meta struct {
	proto   uint16
	ifindex uint32
	hatype  uint16
	pkttype uint8
	addr    [6]byte
}

func (m meta) sll2(payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(h[0:], m.proto)
	binary.BigEndian.PutUint32(h[4:], m.ifindex)
	binary.BigEndian.PutUint16(h[8:], m.hatype)
	h[10] = m.pkttype
	h[11] = 6
	copy(h[12:], m.addr[:])
	return append(h, payload...)
}

// interp is a classic BPF interpreter with the kernel's ancillary loads
// (the ones rewriteSLL2 emits), for checking rewritten programs without a
// kernel. It returns the filter's value; ok is false on an instruction it
// does not know.
func interp(prog []bpf.RawInstruction, pkt []byte, m meta) (ret uint32, ok bool) {
	var a, x uint32
	var mem [16]uint32
	load := func(off uint32, size uint16) (uint32, bool) {
		if off >= skfAdOff {
			switch off {
			case skfAdProtocol:
				return uint32(m.proto), true
			case skfAdIfindex:
				return m.ifindex, true
			case skfAdHatype:
				return uint32(m.hatype), true
			case skfAdPkttype:
				return uint32(m.pkttype), true
			}
			return 0, false
		}
		n := map[uint16]uint32{bpfW: 4, bpfH: 2, bpfB: 1}[size]
		if uint64(off)+uint64(n) > uint64(len(pkt)) {
			return 0, false
		}
		switch n {
		case 4:
			return binary.BigEndian.Uint32(pkt[off:]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(pkt[off:])), true
		}
		return uint32(pkt[off]), true
	}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		cls, size, mode := in.Op&bpfClassMask, in.Op&bpfSizeMask, in.Op&bpfModeMask
		src := x
		if in.Op&0x08 == 0 {
			src = in.K
		}
		switch cls {
		case bpfLD, bpfLDX:
			var v uint32
			good := true
			switch mode {
			case bpfIMM:
				v = in.K
			case bpfABS:
				v, good = load(in.K, size)
			case bpfIND:
				v, good = load(x+in.K, size)
			case 0x60:
				v = mem[in.K&15]
			case bpfLEN:
				v = uint32(len(pkt))
			case bpfMSH:
				v, good = load(in.K, bpfB)
				v = 4 * (v & 0xf)
			default:
				return 0, false
			}
			if !good {
				return 0, true // the kernel rejects on a failed load
			}
			if cls == bpfLD {
				a = v
			} else {
				x = v
			}
		case 0x02:
			mem[in.K&15] = a
		case 0x03:
			mem[in.K&15] = x
		case bpfALU:
			switch in.Op & 0xf0 {
			case 0x00:
				a += src
			case 0x10:
				a -= src
			case 0x20:
				a *= src
			case 0x30:
				if src == 0 {
					return 0, true
				}
				a /= src
			case 0x40:
				a |= src
			case 0x50:
				a &= src
			case 0x60:
				a <<= src & 31
			case 0x70:
				a >>= src & 31
			case 0x80:
				a = -a
			case 0x90:
				if src == 0 {
					return 0, true
				}
				a %= src
			case 0xa0:
				a ^= src
			default:
				return 0, false
			}
		case bpfJMP:
			var c bool
			switch in.Op & 0xf0 {
			case 0x00:
				pc += int(in.K)
				continue
			case 0x10:
				c = a == src
			case 0x20:
				c = a > src
			case 0x30:
				c = a >= src
			case 0x40:
				c = a&src != 0
			default:
				return 0, false
			}
			if c {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRET:
			switch in.Op & 0x18 {
			case 0x00:
				return in.K, true
			case 0x10:
				return a, true
			case 0x08:
				return x, true
			}
			return 0, false
		case 0x07:
			if in.Op&0xf8 == 0 {
				x = a
			} else {
				a = x
			}
		}
	}
	return 0, false
}

// corpus returns network-layer packets with their protocol.
func corpus(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	ser := func(ls ...gopacket.SerializableLayer) {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), buf.Bytes()...))
	}
	v4 := func(proto layers.IPProtocol, src, dst string, frag uint16) *layers.IPv4 {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), FragOffset: frag}
	}
	v6 := func(next layers.IPProtocol, src, dst string) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	}
	for _, size := range []int{0, 10, 80, 300} {
		pl := gopacket.Payload(make([]byte, size))
		for _, ports := range [][2]int{{53, 40000}, {40000, 53}, {1500, 80}, {9999, 9999}} {
			ip := v4(layers.IPProtocolUDP, "10.0.0.1", "10.0.0.2", 0)
			u := &layers.UDP{SrcPort: layers.UDPPort(ports[0]), DstPort: layers.UDPPort(ports[1])}
			u.SetNetworkLayerForChecksum(ip)
			ser(ip, u, pl)
			ip6 := v6(layers.IPProtocolUDP, "fd00::1", "fd00::2")
			u6 := &layers.UDP{SrcPort: layers.UDPPort(ports[0]), DstPort: layers.UDPPort(ports[1])}
			u6.SetNetworkLayerForChecksum(ip6)
			ser(ip6, u6, pl)
			ipt := v4(layers.IPProtocolTCP, "192.168.1.5", "10.1.2.3", 0)
			tcp := &layers.TCP{SrcPort: layers.TCPPort(ports[0]), DstPort: layers.TCPPort(ports[1]), SYN: ports[0] == 1500, ACK: true, Window: 1000}
			tcp.SetNetworkLayerForChecksum(ipt)
			ser(ipt, tcp, pl)
			ip6t := v6(layers.IPProtocolTCP, "fd00::1", "fd00::2")
			tcp6 := &layers.TCP{SrcPort: layers.TCPPort(ports[0]), DstPort: 443, Window: 1000}
			tcp6.SetNetworkLayerForChecksum(ip6t)
			ser(ip6t, tcp6, pl)
		}
		ser(v4(layers.IPProtocolICMPv4, "10.0.0.1", "10.0.0.9", 0), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, pl)
		ser(v4(layers.IPProtocolUDP, "10.0.0.1", "10.0.0.2", 100), pl)
		ipo := v4(layers.IPProtocolUDP, "10.0.0.1", "10.0.0.2", 0)
		ipo.IHL, ipo.Options = 6, []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		uo := &layers.UDP{SrcPort: 53, DstPort: 53}
		uo.SetNetworkLayerForChecksum(ipo)
		ser(ipo, uo, pl)
	}
	ser(&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: 1, SourceHwAddress: make([]byte, 6), SourceProtAddress: []byte{10, 0, 0, 1}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}})
	return out
}

func protoOf(p []byte) uint16 {
	if len(p) == 28 && p[0] == 0 {
		return 0x0806 // the ARP packet
	}
	if p[0]>>4 == 6 {
		return 0x86dd
	}
	return 0x0800
}

// sll2Filters are tcpdump expressions for LINUX_SLL2 used to check the
// rewrite against the original program.
var sll2Filters = []string{
	"", "ip", "ip6", "arp", "tcp", "udp", "icmp", "not ip",
	"udp port 53", "tcp port 80 or udp port 53", "udp port 9999",
	"host 10.0.0.1", "src net 10.0.0.0/8", "dst host 10.1.2.3 and tcp",
	"portrange 1000-2000", "greater 100", "less 60", "greater 100 and udp",
	"ip[0]&0xf > 5", "tcp[tcpflags] & tcp-syn != 0", "icmp[icmptype] == icmp-echo",
	"ip proto 17", "ip6 proto 6", "udp and not port 53", "proto 17",
	"ip6 and tcp port 443", "udp[8:2] = 0", "ip[2:2] > 100 or ip6[4:2] > 100",
	"(tcp or udp) and (port 53 or port 80)", "ether proto 0x0806",
}

// TestRewriteSLL2Differential: for each filter compiled for LINUX_SLL2 by
// internal/bpf, the rewritten program run on the network-layer packet with
// the kernel's ancillary values gives what the original gives on the SLL2
// packet (the snap length lowered by the 20-byte header).
func TestRewriteSLL2Differential(t *testing.T) {
	pkts := corpus(t)
	metas := []meta{
		{ifindex: 1, hatype: unix.ARPHRD_LOOPBACK, pkttype: 0},
		{ifindex: 3, hatype: unix.ARPHRD_ETHER, pkttype: 4, addr: [6]byte{2, 0, 0, 0, 0, 1}},
		{ifindex: 7, hatype: unix.ARPHRD_NONE, pkttype: 1},
	}
	const snap = 1000
	rewritten, checked, accepted := 0, 0, 0
	for _, f := range sll2Filters {
		prog, err := ibpf.Compile(f, ibpf.LinuxSLL2, snap)
		if err != nil {
			t.Logf("skipping %q: %v", f, err)
			continue
		}
		raw, err := bpf.Assemble(prog)
		if err != nil {
			t.Fatal(err)
		}
		rw, ok := rewriteSLL2(raw, snap)
		if !ok {
			t.Errorf("%q: not rewritable", f)
			continue
		}
		rewritten++
		for _, p := range pkts {
			for _, m := range metas {
				m.proto = protoOf(p)
				want, ok1 := interp(raw, m.sll2(p), m)
				got, ok2 := interp(rw, p, m)
				if !ok1 || !ok2 {
					t.Fatalf("%q: interpreter failed", f)
				}
				if got != retValue(want, snap, true) {
					t.Fatalf("%q on % x (meta %+v): rewritten %d, original %d\noriginal %v\nrewritten %v", f, p[:min(len(p), 40)], m, got, want, raw, rw)
				}
				checked++
				if want > 0 {
					accepted++
				}
			}
		}
	}
	t.Logf("%d filters rewritten, %d verdicts agree (%d accepts)", rewritten, checked, accepted)
	if accepted == 0 || accepted == checked {
		t.Fatal("the corpus does not tell accepting from rejecting programs")
	}
}

func TestRewriteSLL2Rules(t *testing.T) {
	asm := func(ins ...bpf.Instruction) []bpf.RawInstruction {
		raw, err := bpf.Assemble(ins)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	for _, c := range []struct {
		name string
		in   []bpf.RawInstruction
		want []bpf.RawInstruction // nil: falls back to user space
	}{
		{"fields", asm(
			bpf.LoadAbsolute{Off: 0, Size: 2}, bpf.LoadAbsolute{Off: 2, Size: 2}, bpf.LoadAbsolute{Off: 4, Size: 4},
			bpf.LoadAbsolute{Off: 8, Size: 2}, bpf.LoadAbsolute{Off: 10, Size: 1}, bpf.LoadAbsolute{Off: 29, Size: 1},
			bpf.LoadMemShift{Off: 20}, bpf.LoadIndirect{Off: 22, Size: 2}, bpf.RetConstant{Val: 100}, bpf.RetConstant{Val: 0}),
			asm(
				// The ancillary loads keep the field's size (any size works).
				bpf.LoadAbsolute{Off: skfAdProtocol, Size: 2}, bpf.LoadConstant{Dst: bpf.RegA, Val: 0}, bpf.LoadExtension{Num: bpf.ExtInterfaceIndex},
				bpf.LoadAbsolute{Off: skfAdHatype, Size: 2}, bpf.LoadAbsolute{Off: skfAdPkttype, Size: 1}, bpf.LoadAbsolute{Off: 9, Size: 1},
				bpf.LoadMemShift{Off: 0}, bpf.LoadIndirect{Off: 2, Size: 2}, bpf.RetConstant{Val: 80}, bpf.RetConstant{Val: 0})},
		{"len and jump relocation", asm(
			bpf.Jump{Skip: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipTrue: 1, SkipFalse: 2},
			bpf.LoadExtension{Num: bpf.ExtLen},
			bpf.LoadExtension{Num: bpf.ExtLen},
			bpf.RetA{}),
			asm(
				bpf.Jump{Skip: 3},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipTrue: 2, SkipFalse: 4},
				bpf.LoadExtension{Num: bpf.ExtLen}, bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 20},
				bpf.LoadExtension{Num: bpf.ExtLen}, bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 20},
				bpf.RetA{})},
		{"small snap", asm(bpf.RetConstant{Val: 262144}, bpf.RetConstant{Val: 15}), asm(bpf.RetConstant{Val: 480}, bpf.RetConstant{Val: 1})},
		{"ancillary kept", asm(bpf.LoadExtension{Num: bpf.ExtVLANTagPresent}, bpf.RetA{}), asm(bpf.LoadExtension{Num: bpf.ExtVLANTagPresent}, bpf.RetA{})},
		{"address length", asm(bpf.LoadAbsolute{Off: 11, Size: 1}, bpf.RetA{}), nil},
		{"address", asm(bpf.LoadAbsolute{Off: 12, Size: 4}, bpf.RetA{}), nil},
		{"ifindex as a byte", asm(bpf.LoadAbsolute{Off: 4, Size: 1}, bpf.RetA{}), nil},
		{"protocol as a word", asm(bpf.LoadAbsolute{Off: 0, Size: 4}, bpf.RetA{}), nil},
		{"indexed below the header", asm(bpf.LoadIndirect{Off: 4, Size: 1}, bpf.RetA{}), nil},
		{"ldx len", asm(bpf.LoadExtension{Num: bpf.ExtLen}, bpf.TAX{}, bpf.RawInstruction{Op: bpfLDX | bpfLEN}, bpf.RetA{}), nil},
	} {
		got, ok := rewriteSLL2(c.in, 500)
		if c.want == nil {
			if ok {
				t.Errorf("%s: rewritten to %v; want a user-space fallback", c.name, got)
			}
			continue
		}
		if !ok || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s:\n got %v (%v)\nwant %v", c.name, got, ok, c.want)
		}
	}
}

// TestRewriteLongJump: a conditional jump that no longer fits in 8 bits
// after "ld len" grows falls back to user space.
func TestRewriteLongJump(t *testing.T) {
	ins := []bpf.Instruction{bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipTrue: 255}}
	for range 255 {
		ins = append(ins, bpf.LoadExtension{Num: bpf.ExtLen})
	}
	ins = append(ins, bpf.RetA{})
	raw, err := bpf.Assemble(ins)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rewriteSLL2(raw, 100); ok {
		t.Fatal("rewritten despite a 510-instruction conditional jump")
	}
}

// TestKernelAcceptsPrograms attaches every program Open would build for
// the filters above (with each prefix) to a real packet socket.
func TestKernelAcceptsPrograms(t *testing.T) {
	needRoot(t)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	prefixes := [][]bpf.Instruction{nil, dropOutgoingPrefix(), onlyOutgoingPrefix(), anyLoopbackPrefix(1)}
	n := 0
	for _, f := range sll2Filters {
		for _, lt := range []ibpf.LinkType{ibpf.LinuxSLL2, ibpf.EN10MB} {
			prog, err := ibpf.Compile(f, lt, 0)
			if err != nil {
				continue
			}
			raw, _ := bpf.Assemble(prog)
			for _, pre := range prefixes {
				p, err := buildProgram(raw, lt == ibpf.LinuxSLL2, 65535, pre)
				if err != nil {
					t.Fatalf("%q: %v", f, err)
				}
				if p.user != nil {
					t.Errorf("%q (%v): user-space filter", f, lt)
				}
				if err := attachFilter(fd, p.kernel); err != nil {
					t.Errorf("%q (%v): %v", f, lt, err)
				}
				n++
			}
		}
	}
	for _, f := range []string{"vlan", "vlan 100 and udp port 53", "vlan and vlan 20", "udp or vlan 7"} {
		prog, err := ibpf.CompileWithOptions(f, ibpf.EN10MB, 0, ibpf.Options{KernelVLAN: true})
		if err != nil {
			t.Fatalf("%q: %v", f, err)
		}
		raw, _ := bpf.Assemble(prog)
		p, err := buildProgram(raw, false, 65535, dropOutgoingPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if err := attachFilter(fd, p.kernel); err != nil {
			t.Errorf("%q (KernelVLAN): %v", f, err)
		}
		n++
	}
	t.Logf("%d programs accepted", n)
}
