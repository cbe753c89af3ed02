// Package bpf compiles tcpdump filter expressions into classic BPF programs
// (golang.org/x/net/bpf instructions) suitable for SO_ATTACH_FILTER.
//
// Why hand-written: the only pure-Go compiler (packetcap/go-pcap) gives
// different verdicts from libpcap on common filters (icmp and portrange match
// everything, "not (a or b)" is inverted, mixed and/or precedence is wrong,
// tcp[13]&2!=0 silently becomes tcp) and emits programs the kernel rejects for
// ip6 and arp; linking libpcap through cgo would end the static sidecar image.
// libpcap stays the oracle: the tests compile every filter with
// "tcpdump -ddd" as well and require identical verdicts and snap lengths on a
// packet corpus.
//
// The compiler is deliberately a subset. What it accepts it compiles to the
// same verdicts as libpcap; everything else is rejected with a *SyntaxError
// naming the byte position and the offending word, never compiled into a
// different filter.
//
// Supported subset:
//
//   - and, or, not, &&, ||, ! and parentheses; as in libpcap, "and" and "or"
//     have equal precedence and associate to the left, "not" binds tighter.
//
//   - protocols: ip, ip6, arp, rarp, tcp, udp, sctp, icmp, icmp6.
//
//   - [ip|ip6|arp|rarp] [DIR] host ADDR (IPv4 dotted quad or IPv6 literal);
//     an address after a direction alone ("src 1.2.3.4") is a host.
//
//   - [ip|ip6|arp|rarp] [DIR] net NET, NET/LEN, NET mask MASK (IPv4 net of
//     1-4 decimal octets, or IPv6 literal with optional /LEN).
//
//   - [tcp|udp|sctp] [DIR] port N and portrange N-M (N decimal, 0x hex or 0
//     octal as in libpcap); IPv4 fragments with a non-zero offset never match
//     a port, as in libpcap.
//
//   - DIR is src, dst, src or dst, dst or src, src and dst, dst and src.
//
//   - libpcap's qualifier inheritance: "host a or b", "port 80 or 443",
//     "tcp dst port 80 or not 443", "host a and (b or c)".
//
//   - relations between arithmetic expressions (+ - * / % & | << >>) over
//     numbers, libpcap's named constants (tcpflags, tcp-syn, icmptype,
//     icmp-echo, ...), len, and the accessors ether[], ip[], ip6[], arp[],
//     rarp[], tcp[], udp[], icmp[], icmp6[], sctp[] with constant offsets and
//     sizes 1, 2 or 4; greater N, less N. Semantics follow libpcap 1.10
//     exactly, including its quirks: tcp[]/udp[]/icmp[]/sctp[] match IPv4
//     first fragments only; an arithmetic operator checks only its left
//     operand's protocol; '%' takes the rest of the expression as its right
//     operand. Division by a non-constant is rejected.
//
//   - ether [src|dst] [host] xx:xx:xx:xx:xx:xx, ether proto N (N > 1500),
//     [ether] broadcast, [ether] multicast (Ethernet only); igmp, igrp, pim,
//     vrrp, carp, ah, esp.
//
//   - vlan [ID] (802.1Q, 802.1ad or 0x9100 TPID; ID 0-4095) and mpls [LABEL]
//     (LABEL 0-1048575), on Ethernet only as in libpcap. Like libpcap, each
//     one moves the link-layer offsets by 4 for everything after it in the
//     expression, in reading order and whatever the operators: "vlan 10 and
//     tcp" looks for TCP inside the tag, "vlan and vlan 20" matches VLAN 20
//     inside any tag, and so do the tests after "vlan or" and "not vlan".
//     After mpls only IPv4 and IPv6 can be tested (the bottom-of-stack bit
//     and the IP version nibble, as libpcap); vlan after mpls is rejected.
//     Options.KernelVLAN generates the variant libpcap uses on a live Linux
//     socket, where the kernel has taken the outer tag out of the frame.
//
// Host and service names are not resolved (rejected): the filter must not
// depend on the sidecar's /etc/hosts or /etc/services.
package bpf
