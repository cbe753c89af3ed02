package bpf

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// The synthetic corpus: network-layer packets built with gopacket's layers,
// framed for Ethernet (also with 802.1Q/802.1ad/QinQ tags and MPLS label
// stacks) and for Linux cooked v2, plus truncated copies.

// l3Packet is a network-layer packet: the EtherType that announces it and
// its layers (network and above).
type l3Packet struct {
	name      string
	etherType layers.EthernetType
	layers    []gopacket.SerializableLayer
}

type packet struct {
	name string
	data []byte
}

var (
	macA     = net.HardwareAddr{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}
	macB     = net.HardwareAddr{0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb}
	macBcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	macMc4   = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}
	macMc6   = net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
	macOther = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}
	macLib   = net.HardwareAddr{0xab, 0xcd, 0xef, 0x00, 0x00, 0x01} // in libpcap's tables
	macs     = []net.HardwareAddr{macA, macB, macBcast, macMc4, macMc6, macOther, macLib}
)

// Addresses and ports the filter lists refer to, with neighbours.
var (
	synthV4    = []string{"1.2.3.4", "1.2.3.5", "10.0.0.1", "10.1.2.3", "192.168.1.10", "172.16.5.4", "224.0.0.1", "255.255.255.255"}
	synthV6    = []string{"::1", "fe80::1", "2001:db8::1", "2001:db8::2", "2001:db8:1::5", "ff02::1"}
	synthPorts = [][2]uint16{{80, 34567}, {34567, 443}, {53, 53}, {22, 1024}, {8080, 5}, {1, 65535}, {3, 70}, {8, 55}, {0, 1025},
		{25, 7}, {5672, 25}, {7, 5672}, {300, 80}}
)

func ip4(s string) net.IP { a := netip.MustParseAddr(s).As4(); return net.IP(a[:]) }
func ip6(s string) net.IP { a := netip.MustParseAddr(s).As16(); return net.IP(a[:]) }

// serialize lays out ls with lengths and checksums computed.
func serialize(ls ...gopacket.SerializableLayer) []byte {
	for _, l := range ls {
		var nl gopacket.NetworkLayer
		for _, m := range ls {
			if n, ok := m.(gopacket.NetworkLayer); ok {
				nl = n
			}
		}
		switch l := l.(type) {
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(nl)
		case *layers.UDP:
			_ = l.SetNetworkLayerForChecksum(nl)
		case *layers.ICMPv6:
			_ = l.SetNetworkLayerForChecksum(nl)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(fmt.Sprintf("serialize %v: %v", ls, err))
	}
	return append([]byte{}, buf.Bytes()...)
}

func tcpFlags(t *layers.TCP, f uint8) *layers.TCP {
	t.FIN, t.SYN, t.RST, t.PSH = f&0x01 != 0, f&0x02 != 0, f&0x04 != 0, f&0x08 != 0
	t.ACK, t.URG, t.ECE, t.CWR = f&0x10 != 0, f&0x20 != 0, f&0x40 != 0, f&0x80 != 0
	return t
}

// transport returns the layers of an IP payload of protocol proto.
func transport(proto layers.IPProtocol, sp, dp uint16, flags uint8, payload int) []gopacket.SerializableLayer {
	pl := gopacket.Payload(make([]byte, payload))
	switch proto {
	case layers.IPProtocolTCP:
		t := tcpFlags(&layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: 1000, Ack: 2000, Window: 65535}, flags)
		if flags&0x02 != 0 {
			t.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}},
				{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}}
		}
		return []gopacket.SerializableLayer{t, pl}
	case layers.IPProtocolUDP:
		return []gopacket.SerializableLayer{&layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}, pl}
	case layers.IPProtocolSCTP:
		return []gopacket.SerializableLayer{&layers.SCTP{SrcPort: layers.SCTPPort(sp), DstPort: layers.SCTPPort(dp), VerificationTag: 7},
			gopacket.Payload(append([]byte{0, 3, 0, byte(16 + payload)}, make([]byte, 12+(payload+3)/4*4)...))}
	case layers.IPProtocolICMPv4:
		return []gopacket.SerializableLayer{&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(uint8(sp), uint8(dp)), Id: 7, Seq: 1}, pl}
	case layers.IPProtocolICMPv6:
		return []gopacket.SerializableLayer{&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(uint8(sp), uint8(dp))},
			gopacket.Payload(append([]byte{0, 7, 0, 1}, make([]byte, payload)...))}
	}
	return []gopacket.SerializableLayer{gopacket.Payload(append([]byte{byte(sp >> 8), byte(sp), byte(dp >> 8), byte(dp)}, make([]byte, 4+payload)...))}
}

func v4Packet(name, src, dst string, proto layers.IPProtocol, sp, dp uint16, flags uint8, mod func(*layers.IPv4)) l3Packet {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 1, Protocol: proto, SrcIP: ip4(src), DstIP: ip4(dst), Flags: layers.IPv4DontFragment}
	if mod != nil {
		mod(ip)
	}
	return l3Packet{name, layers.EthernetTypeIPv4, append([]gopacket.SerializableLayer{ip}, transport(proto, sp, dp, flags, int(sp%7)*10)...)}
}

// v6Packet builds an IPv6 packet; ext are raw extension headers (each
// starting with its next-header byte, which is filled in).
func v6Packet(name, src, dst string, proto layers.IPProtocol, sp, dp uint16, flags uint8, ext ...[]byte) l3Packet {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: ip6(src), DstIP: ip6(dst)}
	ls := []gopacket.SerializableLayer{ip}
	var hdrs [][]byte
	for _, e := range ext {
		hdrs = append(hdrs, append([]byte{}, e...))
	}
	if len(hdrs) == 0 {
		ip.NextHeader = proto
	} else {
		ip.NextHeader = layers.IPProtocol(hdrs[0][0])
		for i := range hdrs {
			if i+1 < len(hdrs) {
				hdrs[i][0] = hdrs[i+1][0]
			} else {
				hdrs[i][0] = byte(proto)
			}
		}
		for _, h := range hdrs {
			ls = append(ls, gopacket.Payload(h))
		}
	}
	return l3Packet{name, layers.EthernetTypeIPv6, append(ls, transport(proto, sp, dp, flags, int(sp%5)*10)...)}
}

// IPv6 extension headers, the first byte naming their own type (replaced by
// the next header when laid out).
var (
	extHopByHop = []byte{0, 0, 1, 4, 0, 0, 0, 0}
	extDestOpts = []byte{60, 0, 1, 4, 0, 0, 0, 0}
	extRouting  = []byte{43, 0, 0, 0, 0, 0, 0, 0}
	extFrag0    = []byte{44, 0, 0, 0, 0, 0, 0, 1}       // offset 0, last fragment
	extFrag0MF  = []byte{44, 0, 0, 1, 0, 0, 0, 2}       // offset 0, more fragments
	extFragN    = []byte{44, 0, 0x05, 0x40, 0, 0, 0, 3} // offset 168, last
)

func arpPacket(name string, et layers.EthernetType, op uint16, spa, tpa string) l3Packet {
	return l3Packet{name, et, []gopacket.SerializableLayer{&layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: macB, SourceProtAddress: ip4(spa), DstHwAddress: make([]byte, 6), DstProtAddress: ip4(tpa),
	}}}
}

// l3Corpus is every network-layer packet of the synthetic corpus.
func l3Corpus() []l3Packet {
	var ps []l3Packet
	add := func(p l3Packet) { ps = append(ps, p) }
	tcp, udp, sctp, icmp, icmp6 := layers.IPProtocolTCP, layers.IPProtocolUDP, layers.IPProtocolSCTP, layers.IPProtocolICMPv4, layers.IPProtocolICMPv6
	// Every address pair with every port pair, for TCP, UDP and SCTP.
	for i, s := range synthV4 {
		d := synthV4[(i+1)%len(synthV4)]
		for j, pp := range synthPorts {
			for _, pr := range []layers.IPProtocol{tcp, udp, sctp} {
				add(v4Packet(fmt.Sprintf("ip %s>%s %v %d>%d", s, d, pr, pp[0], pp[1]), s, d, pr, pp[0], pp[1], 0x18, func(ip *layers.IPv4) {
					ip.TTL = uint8(1 + 40*(j%4))
					ip.TOS = uint8(j * 4)
				}))
			}
		}
		add(v4Packet("ip same "+s, s, s, tcp, 80, 80, 0x10, nil))
	}
	// TCP flag combinations that filters test.
	for _, f := range []uint8{0, 0x02, 0x12, 0x10, 0x11, 0x19, 0x04, 0x14, 0x18, 0x20, 0x38, 0x42, 0x80, 0xc2, 0x01, 0x29, 0xff} {
		add(v4Packet(fmt.Sprintf("ip tcp flags %#02x", f), "1.2.3.4", "10.0.0.1", tcp, 34567, 80, f, nil))
		add(v6Packet(fmt.Sprintf("ip6 tcp flags %#02x", f), "2001:db8::1", "2001:db8::2", tcp, 443, 34567, f))
	}
	// ICMP types and codes.
	for _, tc := range [][2]uint16{{0, 0}, {3, 1}, {3, 3}, {4, 0}, {5, 1}, {8, 0}, {9, 0}, {10, 0}, {11, 0}, {12, 0}, {13, 0}, {14, 0}, {17, 0}, {18, 0}} {
		add(v4Packet(fmt.Sprintf("icmp %d/%d", tc[0], tc[1]), "192.168.1.10", "1.2.3.4", icmp, tc[0], tc[1], 0, nil))
	}
	for _, tc := range [][2]uint16{{1, 4}, {2, 0}, {3, 0}, {128, 0}, {129, 0}, {133, 0}, {134, 0}, {135, 0}, {136, 0}, {143, 0}} {
		add(v6Packet(fmt.Sprintf("icmp6 %d/%d", tc[0], tc[1]), "fe80::1", "ff02::1", icmp6, tc[0], tc[1], 0))
	}
	// IPv4 with options, fragments and other protocols.
	opts := func(ip *layers.IPv4) {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}}
	}
	add(v4Packet("ip opts tcp 80", "1.2.3.4", "10.0.0.1", tcp, 80, 1234, 0x18, opts))
	add(v4Packet("ip opts udp 53", "10.0.0.1", "1.2.3.4", udp, 53, 53, 0, opts))
	add(v4Packet("ip opts icmp echo", "10.0.0.1", "1.2.3.4", icmp, 8, 0, 0, opts))
	for _, fr := range []struct {
		name  string
		flags layers.IPv4Flag
		off   uint16
	}{{"first MF", layers.IPv4MoreFragments, 0}, {"middle MF", layers.IPv4MoreFragments, 185}, {"last", 0, 2}, {"DF", layers.IPv4DontFragment, 0}, {"evil", layers.IPv4EvilBit, 0x1fff}} {
		for _, pr := range []layers.IPProtocol{tcp, udp, icmp, sctp} {
			add(v4Packet(fmt.Sprintf("ip frag %s %v", fr.name, pr), "1.2.3.4", "10.0.0.1", pr, 53, 80, 0x02, func(ip *layers.IPv4) {
				ip.Flags, ip.FragOffset = fr.flags, fr.off
			}))
		}
	}
	for _, pr := range []layers.IPProtocol{2, 9, 47, 50, 51, 88, 89, 103, 112, 255, 0} {
		add(v4Packet(fmt.Sprintf("ip proto %d", pr), "1.2.3.4", "224.0.0.1", pr, 1, 2, 0, nil))
		add(v6Packet(fmt.Sprintf("ip6 proto %d", pr), "2001:db8::1", "ff02::1", pr, 1, 2, 0))
		add(v6Packet(fmt.Sprintf("ip6 frag proto %d", pr), "2001:db8::1", "::1", pr, 1, 2, 0, extFrag0))
	}
	// IPv6: address pairs and ports, extension headers, fragments.
	for i, s := range synthV6 {
		d := synthV6[(i+1)%len(synthV6)]
		for _, pp := range synthPorts[:6] {
			for _, pr := range []layers.IPProtocol{tcp, udp, sctp} {
				add(v6Packet(fmt.Sprintf("ip6 %s>%s %v %d>%d", s, d, pr, pp[0], pp[1]), s, d, pr, pp[0], pp[1], 0x18))
			}
		}
		add(v6Packet("ip6 echo "+s, s, d, icmp6, 128, 0, 0))
	}
	for _, e := range []struct {
		name string
		ext  [][]byte
	}{
		{"hopbyhop", [][]byte{extHopByHop}}, {"destopts", [][]byte{extDestOpts}}, {"routing", [][]byte{extRouting}},
		{"frag0", [][]byte{extFrag0}}, {"frag0 MF", [][]byte{extFrag0MF}}, {"fragN", [][]byte{extFragN}},
		{"hopbyhop frag0", [][]byte{extHopByHop, extFrag0}}, {"hopbyhop routing destopts", [][]byte{extHopByHop, extRouting, extDestOpts}},
	} {
		for _, pr := range []layers.IPProtocol{tcp, udp, icmp6, sctp} {
			add(v6Packet(fmt.Sprintf("ip6 %s %v", e.name, pr), "2001:db8::1", "2001:db8:1::5", pr, 53, 80, 0x02, e.ext...))
		}
	}
	// Odd transport headers: a TCP data offset below 5, a UDP payload that
	// filters look for.
	badTCP := []byte{0, 80, 0, 25, 0, 0, 0, 1, 0, 0, 0, 0, 4 << 4, 0x02, 0xff, 0xff, 0, 0, 0, 0}
	add(l3Packet{"ip tcp data offset 4", layers.EthernetTypeIPv4, []gopacket.SerializableLayer{
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: tcp, SrcIP: ip4("1.2.3.4"), DstIP: ip4("10.0.0.1")}, gopacket.Payload(badTCP)}})
	add(l3Packet{"ip udp payload 0x1234", layers.EthernetTypeIPv4, []gopacket.SerializableLayer{
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: udp, SrcIP: ip4("10.0.0.1"), DstIP: ip4("1.2.3.4")},
		&layers.UDP{SrcPort: 5000, DstPort: 5001}, gopacket.Payload([]byte{0x12, 0x34, 0, 0})}})
	// Long packets whose payload is all 0xcd, for accessors at large offsets.
	cd := make([]byte, 300)
	for i := range cd {
		cd[i] = 0xcd
	}
	for _, pr := range []layers.IPProtocol{tcp, udp, sctp, icmp} {
		p := v4Packet(fmt.Sprintf("ip long %v", pr), "1.2.3.4", "10.0.0.1", pr, 80, 25, 0x10, nil)
		p.layers = append(p.layers, gopacket.Payload(cd))
		add(p)
	}
	for _, pr := range []layers.IPProtocol{tcp, udp, sctp, icmp6} {
		p := v6Packet(fmt.Sprintf("ip6 long %v", pr), "2001:db8::1", "2001:db8::2", pr, 80, 25, 0x10)
		p.layers = append(p.layers, gopacket.Payload(cd))
		add(p)
	}
	// ARP and RARP.
	for i, s := range synthV4[:6] {
		d := synthV4[(i+2)%6]
		add(arpPacket("arp request "+s, layers.EthernetTypeARP, 1, s, d))
		add(arpPacket("arp reply "+s, layers.EthernetTypeARP, 2, d, s))
		add(arpPacket("rarp request "+s, layers.EthernetType(etherRARP), 3, d, s))
		add(arpPacket("rarp reply "+s, layers.EthernetType(etherRARP), 4, s, d))
	}
	longARP := arpPacket("arp long", layers.EthernetTypeARP, 1, "1.2.3.4", "10.0.0.1")
	longARP.layers = append(longARP.layers, gopacket.Payload(cd))
	add(longARP)
	// Other EtherTypes.
	add(l3Packet{"lldp", layers.EthernetTypeLinkLayerDiscovery, []gopacket.SerializableLayer{gopacket.Payload(make([]byte, 46))}})
	add(l3Packet{"ethertype 0x88cc short", 0x88cc, []gopacket.SerializableLayer{gopacket.Payload([]byte{2, 7})}})
	add(l3Packet{"ethertype 0x8137 ipx", 0x8137, []gopacket.SerializableLayer{gopacket.Payload(make([]byte, 30))}})
	add(l3Packet{"ethertype 0x0800 not ipv4", layers.EthernetTypeIPv4, []gopacket.SerializableLayer{gopacket.Payload(make([]byte, 40))}})
	add(l3Packet{"ethertype 0x86dd not ipv6", layers.EthernetTypeIPv6, []gopacket.SerializableLayer{gopacket.Payload(make([]byte, 60))}})
	return ps
}

// sll2 is the 20-byte LINUX_SLL2 header (gopacket decodes it but does not
// serialize it).
type sll2 struct {
	proto   uint16
	ifindex uint32
	pktType uint8
	addr    net.HardwareAddr
}

func (sll2) LayerType() gopacket.LayerType { return layers.LayerTypeLinuxSLL2 }

func (s sll2) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	h, err := b.PrependBytes(20)
	if err != nil {
		return err
	}
	clear(h)
	binary.BigEndian.PutUint16(h[0:], s.proto)
	binary.BigEndian.PutUint32(h[4:], s.ifindex)
	binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
	h[10] = s.pktType
	h[11] = byte(len(s.addr))
	copy(h[12:], s.addr)
	return nil
}

// truncations returns prefixes of b cut inside or at the end of the headers
// filters read.
func truncations(name string, b []byte, link int) []packet {
	var ps []packet
	for _, n := range []int{link - 4, link - 1, link + 1, link + 9, link + 10, link + 13, link + 20, link + 21, link + 23, link + 34, link + 39, link + 41, link + 54, len(b) - 1} {
		if n > 0 && n < len(b) {
			ps = append(ps, packet{fmt.Sprintf("truncated %d %s", n, name), b[:n]})
		}
	}
	return ps
}

// syntheticEthernet is the EN10MB synthetic corpus.
func syntheticEthernet() []packet {
	var ps []packet
	add := func(name string, ls ...gopacket.SerializableLayer) []byte {
		b := serialize(ls...)
		ps = append(ps, packet{name, b})
		return b
	}
	eth := func(i int, et layers.EthernetType) *layers.Ethernet {
		dst, src := macs[i%len(macs)], macs[(i+1)%2]
		return &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: et}
	}
	for i, p := range l3Corpus() {
		b := add("eth "+p.name, append([]gopacket.SerializableLayer{eth(i, p.etherType)}, p.layers...)...)
		if i%9 == 0 {
			ps = append(ps, truncations(p.name, b, 14)...)
		}
		if i%3 != 0 && !strings.Contains(p.name, "flags") && !strings.Contains(p.name, "arp") && !strings.Contains(p.name, "proto") {
			continue
		}
		// VLAN tags: 802.1Q with assorted IDs and priorities, 802.1ad over
		// 802.1Q, the old 0x9100 QinQ TPID, three tags; MPLS stacks.
		vid := []uint16{10, 20, 0, 4095, 10, 30}[i%6]
		tag := func(id uint16, prio uint8, next layers.EthernetType) *layers.Dot1Q {
			return &layers.Dot1Q{VLANIdentifier: id, Priority: prio, Type: next}
		}
		with := func(ls ...gopacket.SerializableLayer) []gopacket.SerializableLayer { return append(ls, p.layers...) }
		add(fmt.Sprintf("vlan %d %s", vid, p.name), with(eth(i, layers.EthernetTypeDot1Q), tag(vid, uint8(i%8), p.etherType))...)
		add(fmt.Sprintf("qinq 20/%d %s", vid, p.name), with(eth(i, layers.EthernetTypeQinQ), tag(20, 0, layers.EthernetTypeDot1Q), tag(vid, 5, p.etherType))...)
		if i%4 == 0 {
			add(fmt.Sprintf("9100 %d %s", vid, p.name), with(eth(i, 0x9100), tag(vid, 0, p.etherType))...)
			// 802.1ah (PBB) is not a VLAN TPID for libpcap.
			add(fmt.Sprintf("88e7 %s", p.name), with(eth(i, 0x88e7), tag(10, 0, p.etherType))...)
			add(fmt.Sprintf("vlan 10/20/30/40 %s", p.name), with(eth(i, layers.EthernetTypeDot1Q), tag(10, 0, layers.EthernetTypeDot1Q),
				tag(20, 0, layers.EthernetTypeDot1Q), tag(30, 0, layers.EthernetTypeDot1Q), tag(40, 0, p.etherType))...)
			add(fmt.Sprintf("vlan 10/20/30 %s", p.name), with(eth(i, layers.EthernetTypeDot1Q), tag(10, 0, layers.EthernetTypeDot1Q), tag(20, 0, layers.EthernetTypeDot1Q), tag(30, 0, p.etherType))...)
			b := add(fmt.Sprintf("vlan 10 dei %s", p.name), with(eth(i, layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 10, DropEligible: true, Type: p.etherType})...)
			ps = append(ps, truncations("vlan "+p.name, b, 18)...)
		}
		if p.etherType == layers.EthernetTypeIPv4 || p.etherType == layers.EthernetTypeIPv6 {
			mpls := func(label uint32, bottom bool) *layers.MPLS {
				return &layers.MPLS{Label: label, StackBottom: bottom, TTL: 64}
			}
			label := []uint32{100, 5, 0, 16, 1048575}[i%5]
			add(fmt.Sprintf("mpls %d %s", label, p.name), with(eth(i, layers.EthernetTypeMPLSUnicast), mpls(label, true))...)
			add("mpls 100/5 "+p.name, with(eth(i, layers.EthernetTypeMPLSUnicast), mpls(100, false), mpls(5, true))...)
			if i%4 == 0 {
				add("vlan 10 mpls 5 "+p.name, with(eth(i, layers.EthernetTypeDot1Q), tag(10, 0, layers.EthernetTypeMPLSUnicast), mpls(5, true))...)
				add("mpls 1048575 no bottom "+p.name, with(eth(i, layers.EthernetTypeMPLSUnicast), mpls(1048575, false))...)
			}
		}
	}
	// 802.3 frames with an LLC header (a length, not an EtherType).
	for i, d := range []byte{0x42, 0xaa, 0xe0, 0xfe} {
		add(fmt.Sprintf("802.3 llc %#x", d),
			&layers.Ethernet{SrcMAC: macA, DstMAC: macs[i%len(macs)], EthernetType: layers.EthernetTypeLLC},
			&layers.LLC{DSAP: d, SSAP: d, Control: 3}, gopacket.Payload(make([]byte, 38)))
	}
	for _, n := range []int{0, 1, 6, 10, 12, 13} {
		ps = append(ps, packet{fmt.Sprintf("runt %d", n), serialize(eth(2, layers.EthernetTypeIPv4), gopacket.Payload(make([]byte, 46)))[:n]})
	}
	return ps
}

// syntheticSLL2 is the LINUX_SLL2 synthetic corpus: the same network-layer
// packets, received, broadcast, multicast and outgoing.
func syntheticSLL2() []packet {
	var ps []packet
	for i, p := range l3Corpus() {
		h := sll2{proto: uint16(p.etherType), ifindex: uint32(1 + i%3), pktType: []uint8{0, 1, 2, 4, 3}[i%5], addr: macs[(i+1)%2]}
		b := serialize(append([]gopacket.SerializableLayer{h}, p.layers...)...)
		ps = append(ps, packet{"sll2 " + p.name, b})
		if i%9 == 0 {
			ps = append(ps, truncations(p.name, b, 20)...)
		}
		if i%16 == 0 {
			h.proto = etherMPLS
			ps = append(ps, packet{"sll2 mpls " + p.name, serialize(append([]gopacket.SerializableLayer{h, &layers.MPLS{Label: 100, StackBottom: true, TTL: 1}}, p.layers...)...)})
			h.proto = ether8021Q
			ps = append(ps, packet{"sll2 vlan " + p.name, serialize(append([]gopacket.SerializableLayer{h, &layers.Dot1Q{VLANIdentifier: 10, Type: p.etherType}}, p.layers...)...)})
		}
	}
	for _, n := range []int{0, 1, 15, 19} {
		ps = append(ps, packet{fmt.Sprintf("sll2 runt %d", n), make([]byte, n)})
	}
	return ps
}

// TestSyntheticCorpus: the synthetic frames decode with gopacket (all but
// the deliberately truncated or malformed ones, and those gopacket cannot
// decode: dummy payloads of other IP protocols, LLDP, LLC or 802.1ah, long
// runs of 0xcd after a header, a TCP data offset below 5, the 0x9100 TPID,
// RARP, an MPLS stack without a bottom label,
// ICMPv6 neighbour discovery without its body).
func TestSyntheticCorpus(t *testing.T) {
	skip := []string{"truncated", "runt", "not ipv", "ethertype", "proto", "lldp", "802.3", "88e7", "long", "data offset", "9100", "no bottom", "rarp", "icmp6 13"}
	for _, c := range []struct {
		lt    LinkType
		ps    []packet
		first gopacket.Decoder
	}{{EN10MB, syntheticEthernet(), layers.LayerTypeEthernet}, {LinuxSLL2, syntheticSLL2(), layers.LayerTypeLinuxSLL2}} {
		decoded := 0
	next:
		for _, p := range c.ps {
			for _, s := range skip {
				if strings.Contains(p.name, s) {
					continue next
				}
			}
			pkt := gopacket.NewPacket(p.data, c.first, gopacket.Default)
			if el := pkt.ErrorLayer(); el != nil {
				t.Errorf("%v %s: %v", c.lt, p.name, el.Error())
				continue
			}
			decoded++
		}
		t.Logf("%v: %d synthetic packets, %d checked by decoding", c.lt, len(c.ps), decoded)
	}
}
