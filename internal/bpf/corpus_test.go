package bpf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	xbpf "golang.org/x/net/bpf"
)

// ---- synthetic packets ----

func ethFrame(etherType uint16, payload []byte) []byte {
	b := []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0, 0}
	binary.BigEndian.PutUint16(b[12:], etherType)
	return append(b, payload...)
}

func ports(sp, dp uint16, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	return b
}

func l4(proto uint8, sp, dp uint16) []byte {
	switch proto {
	case ipprotoTCP:
		b := ports(sp, dp, 20)
		b[12] = 5 << 4
		b[13] = 0x12
		return b
	case ipprotoUDP:
		b := ports(sp, dp, 8)
		binary.BigEndian.PutUint16(b[4:], 8)
		return b
	case ipprotoSCTP:
		return ports(sp, dp, 12)
	default: // icmp / icmp6 echo request
		return []byte{8, 0, 0, 0, byte(sp >> 8), byte(sp), 0, 1}
	}
}

func ipv4(src, dst string, proto uint8, fragField uint16, options int, payload []byte) []byte {
	ihl := 5 + options
	h := make([]byte, 4*ihl)
	h[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(payload)))
	binary.BigEndian.PutUint16(h[6:], fragField)
	h[8] = 64
	h[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	for i := 20; i < len(h); i++ {
		h[i] = 1 // NOP options
	}
	return append(h, payload...)
}

func ipv6(src, dst string, nh uint8, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = nh
	h[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

func arpPkt(op uint16, spa, tpa string) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], etherIP)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	s, t := netip.MustParseAddr(spa).As4(), netip.MustParseAddr(tpa).As4()
	copy(b[14:], s[:])
	copy(b[24:], t[:])
	return b
}

type packet struct {
	name string
	data []byte
}

func syntheticEthernet() []packet {
	var ps []packet
	add := func(name string, b []byte) { ps = append(ps, packet{name, b}) }
	v4 := []string{"1.2.3.4", "1.2.3.5", "10.0.0.1", "10.1.2.3", "192.168.1.10", "172.16.5.4"}
	v6 := []string{"::1", "fe80::1", "2001:db8::1", "2001:db8::2", "2001:db8:1::5"}
	pp := [][2]uint16{{80, 34567}, {34567, 443}, {53, 53}, {22, 1024}, {8080, 5}, {1, 65535}, {3, 70}}
	protos := []uint8{ipprotoTCP, ipprotoUDP, ipprotoSCTP, ipprotoICMP}
	for i, s := range v4 {
		d := v4[(i+1)%len(v4)]
		for _, p := range protos {
			for _, pt := range pp {
				add(fmt.Sprintf("ip %s>%s p%d %d>%d", s, d, p, pt[0], pt[1]), ethFrame(etherIP, ipv4(s, d, p, 0, 0, l4(p, pt[0], pt[1]))))
			}
		}
		add("ip same "+s, ethFrame(etherIP, ipv4(s, s, ipprotoTCP, 0x4000, 0, l4(ipprotoTCP, 80, 80))))
		add("arp "+s, ethFrame(etherARP, arpPkt(1, s, d)))
		add("rarp "+s, ethFrame(etherRARP, arpPkt(3, d, s)))
	}
	// IPv4 with options, fragments.
	add("ip opts tcp 80", ethFrame(etherIP, ipv4("1.2.3.4", "10.0.0.1", ipprotoTCP, 0, 2, l4(ipprotoTCP, 80, 1234))))
	add("ip first frag udp 53", ethFrame(etherIP, ipv4("1.2.3.4", "10.0.0.1", ipprotoUDP, 0x2000, 0, l4(ipprotoUDP, 53, 53))))
	add("ip later frag udp", ethFrame(etherIP, ipv4("1.2.3.4", "10.0.0.1", ipprotoUDP, 0x00b9, 0, l4(ipprotoUDP, 53, 53))))
	add("ip last frag tcp", ethFrame(etherIP, ipv4("1.2.3.5", "10.0.0.1", ipprotoTCP, 0x0010, 0, l4(ipprotoTCP, 80, 80))))
	for _, pr := range []uint8{47, 2, 9, 112, 103, 51, 50} {
		add(fmt.Sprintf("ip proto %d", pr), ethFrame(etherIP, ipv4("1.2.3.4", "10.0.0.1", pr, 0, 0, make([]byte, 8))))
		add(fmt.Sprintf("ip6 proto %d", pr), ethFrame(etherIP6, ipv6("2001:db8::1", "::1", pr, make([]byte, 8))))
		add(fmt.Sprintf("ip6 frag proto %d", pr), ethFrame(etherIP6, ipv6("2001:db8::1", "::1", ipprotoFrag, append([]byte{pr, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 8)...))))
	}
	for i, s := range v6 {
		d := v6[(i+1)%len(v6)]
		for _, p := range []uint8{ipprotoTCP, ipprotoUDP, ipprotoSCTP, ipprotoICMP6} {
			for _, pt := range pp[:5] {
				add(fmt.Sprintf("ip6 %s>%s p%d %d>%d", s, d, p, pt[0], pt[1]), ethFrame(etherIP6, ipv6(s, d, p, l4(p, pt[0], pt[1]))))
			}
		}
		frag := append([]byte{ipprotoTCP, 0, 0, 0, 0, 0, 0, 1}, l4(ipprotoTCP, 80, 443)...)
		add("ip6 frag tcp "+s, ethFrame(etherIP6, ipv6(s, d, ipprotoFrag, frag)))
		add("ip6 hopopts udp "+s, ethFrame(etherIP6, ipv6(s, d, 0, append([]byte{ipprotoUDP, 0, 1, 4, 0, 0, 0, 0}, l4(ipprotoUDP, 53, 53)...))))
	}
	// Link-layer broadcast and multicast destinations.
	for i := range ps {
		switch {
		case strings.HasPrefix(ps[i].name, "arp "):
			copy(ps[i].data[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		case strings.HasPrefix(ps[i].name, "ip6 ") && i%3 == 0:
			copy(ps[i].data[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
		case strings.HasPrefix(ps[i].name, "ip ") && i%7 == 0:
			copy(ps[i].data[0:6], []byte{0x01, 0x00, 0x5e, 0, 0, 1})
		case i%11 == 0:
			copy(ps[i].data[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xfe})
		}
	}
	// Other ethertypes and truncated frames.
	add("lldp", ethFrame(0x88cc, make([]byte, 46)))
	add("vlan", ethFrame(0x8100, append([]byte{0, 10, 0x08, 0}, ipv4("1.2.3.4", "10.0.0.1", ipprotoTCP, 0, 0, l4(ipprotoTCP, 80, 80))...)))
	full := ethFrame(etherIP, ipv4("1.2.3.4", "10.0.0.1", ipprotoTCP, 0, 0, l4(ipprotoTCP, 80, 80)))
	for _, n := range []int{10, 13, 20, 30, 34, 36, 38} {
		add(fmt.Sprintf("truncated ip tcp %d", n), full[:n])
	}
	full6 := ethFrame(etherIP6, ipv6("2001:db8::1", "::1", ipprotoUDP, l4(ipprotoUDP, 53, 53)))
	for _, n := range []int{21, 40, 56} {
		add(fmt.Sprintf("truncated ip6 udp %d", n), full6[:n])
	}
	return ps
}

// toSLL2 turns an Ethernet frame into a LINUX_SLL2 one.
func toSLL2(eth []byte) []byte {
	if len(eth) < 14 {
		return nil
	}
	h := make([]byte, 20)
	copy(h[0:2], eth[12:14])
	binary.BigEndian.PutUint32(h[4:], 2)
	binary.BigEndian.PutUint16(h[8:], 1)
	h[10] = 0
	h[11] = 6
	copy(h[12:], eth[6:12])
	return append(h, eth[14:]...)
}

// ---- pcap reader (classic format only) ----

func readPcap(path string) (linkType uint32, pkts [][]byte, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	if len(b) < 24 {
		return 0, nil, fmt.Errorf("short file")
	}
	var bo binary.ByteOrder
	switch m := binary.LittleEndian.Uint32(b); m {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return 0, nil, fmt.Errorf("not a classic pcap file")
	}
	linkType = bo.Uint32(b[20:]) & 0x0fffffff
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if n < 0 || off+n > len(b) {
			break
		}
		pkts = append(pkts, b[off:off+n])
		off += n
	}
	return linkType, pkts, nil
}

func sharedFixtures(t testing.TB) string {
	dir := filepath.Join("..", "..", "..", "shared", "fixtures")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("../shared/fixtures not found relative to the module root (%s): %v", dir, err)
	}
	return dir
}

func corpus(t testing.TB, lt LinkType) []packet {
	var ps []packet
	for _, p := range syntheticEthernet() {
		if lt == LinuxSLL2 {
			if s := toSLL2(p.data); s != nil {
				ps = append(ps, packet{p.name, s})
			}
			continue
		}
		ps = append(ps, p)
	}
	dir := filepath.Join("..", "..", "..", "shared", "fixtures")
	want := map[LinkType]uint32{EN10MB: 1, LinuxSLL2: 276}[lt]
	for _, sub := range []string{"pcap", filepath.Join("bpf-filters", "savefiles")} {
		files, _ := filepath.Glob(filepath.Join(dir, sub, "*.pcap"))
		for _, f := range files {
			link, pkts, err := readPcap(f)
			if err != nil || link != want {
				continue
			}
			for i, p := range pkts {
				ps = append(ps, packet{fmt.Sprintf("%s#%d", filepath.Base(f), i+1), p})
			}
		}
	}
	return ps
}

// ---- libpcap oracle ----

var tcpdumpCache sync.Map

func tcpdumpDLT(lt LinkType) string { return lt.String() }

// libpcapCompile returns libpcap's program, or an error when libpcap rejects it.
func libpcapCompile(filter string, lt LinkType, snaplen uint32) ([]xbpf.Instruction, error) {
	return libpcapCompileOpt(filter, lt, snaplen, true)
}

// libpcapCompileOpt compiles with libpcap's optimizer on or off (tcpdump -O).
func libpcapCompileOpt(filter string, lt LinkType, snaplen uint32, optimize bool) ([]xbpf.Instruction, error) {
	key := fmt.Sprintf("%v|%d|%v|%s", lt, snaplen, optimize, filter)
	if v, ok := tcpdumpCache.Load(key); ok {
		r := v.([2]any)
		prog, _ := r[0].([]xbpf.Instruction)
		err, _ := r[1].(error)
		return prog, err
	}
	prog, err := runTcpdump(filter, lt, snaplen, optimize)
	tcpdumpCache.Store(key, [2]any{prog, err})
	return prog, err
}

func runTcpdump(filter string, lt LinkType, snaplen uint32, optimize bool) ([]xbpf.Instruction, error) {
	args := []string{"-y", tcpdumpDLT(lt), "-s", strconv.Itoa(int(snaplen)), "-ddd"}
	if !optimize {
		args = append(args, "-O")
	}
	cmd := exec.Command("tcpdump", append(args, "--", filter)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "expression rejects all packets") {
			// libpcap's optimizer proved the filter matches nothing and
			// refuses it; its verdict is "reject" for every packet.
			return []xbpf.Instruction{xbpf.RetConstant{Val: 0}}, nil
		}
		return nil, fmt.Errorf("tcpdump: %s", msg)
	}
	sc := bufio.NewScanner(&out)
	var prog []xbpf.Instruction
	first := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if first {
			first = false
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("bad tcpdump -ddd line %q", sc.Text())
		}
		var v [4]uint64
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nil, err
			}
			v[i] = n
		}
		prog = append(prog, xbpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}.Disassemble())
	}
	return prog, nil
}

// prefetch runs tcpdump for the filters in parallel to fill the cache.
func prefetch(fl []corpusFilter, lt LinkType) {
	work := make(chan corpusFilter)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cf := range work {
				_, _ = libpcapCompile(cf.filter, lt, cf.snaplen)
			}
		}()
	}
	for _, cf := range fl {
		work <- cf
	}
	close(work)
	wg.Wait()
}

var execLookPath = exec.LookPath

func needTcpdump(t testing.TB) {
	if _, err := execLookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not on PATH; install tcpdump: apt-get install -y tcpdump")
	}
}

// compare runs our program and libpcap's over the corpus and returns a
// description of the first disagreement, or "". Where libpcap's optimized
// and unoptimized programs disagree with each other on a packet (the
// optimizer removed a load that would have gone past the end of a short
// packet, or a test it proved redundant), matching either is accepted and
// counted in optDep.
func compare(filter string, lt LinkType, snaplen uint32, ours, theirs []xbpf.Instruction, ps []packet) (diff string, optDep int, err error) {
	vo, err := xbpf.NewVM(ours)
	if err != nil {
		return "", 0, fmt.Errorf("our program does not load in the VM: %v", err)
	}
	vt, err := xbpf.NewVM(theirs)
	if err != nil {
		return "", 0, fmt.Errorf("libpcap program does not load in the VM: %v", err)
	}
	var vu *xbpf.VM
	for _, p := range ps {
		a, errA := vo.Run(p.data)
		b, errB := vt.Run(p.data)
		if a == b && (errA == nil) == (errB == nil) {
			continue
		}
		if vu == nil {
			unopt, err := libpcapCompileOpt(filter, lt, snaplen, false)
			if err == nil {
				vu, err = xbpf.NewVM(unopt)
			}
			if err != nil {
				return "", 0, fmt.Errorf("libpcap unoptimized program: %v", err)
			}
		}
		if u, errU := vu.Run(p.data); u == a && u != b && errU == nil && errA == nil {
			optDep++
			continue
		}
		return fmt.Sprintf("packet %q: ours %d (%v), libpcap %d (%v)", p.name, a, errA, b, errB), optDep, nil
	}
	return "", optDep, nil
}

// ---- filter lists ----

var commonFilters = []string{
	"", "ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp",
	"host 1.2.3.4", "src host 1.2.3.4", "dst host 10.0.0.1", "src and dst host 1.2.3.4",
	"host 1.2.3.4 or 1.2.3.5", "host 1.2.3.4 and 10.0.0.1", "host 1.2.3.4 and not 1.2.3.5",
	"ip host 1.2.3.4", "arp host 1.2.3.4", "rarp host 10.0.0.1", "1.2.3.4",
	"net 10.0.0.0/8", "net 10", "net 192.168", "src net 10.0.0.0 mask 255.0.0.0", "dst net 192.168.1.0/24",
	"net 0.0.0.0/0", "ip net 172.16.0.0/12", "arp net 10.0.0.0/8",
	"host ::1", "ip6 host 2001:db8::1", "src host fe80::1", "net 2001:db8::/32", "ip6 net fe80::/10", "net ::/0",
	"dst net 2001:db8:1::/48", "ip6 net ::1",
	"port 80", "tcp port 80", "udp port 53", "sctp port 22", "src port 80", "dst port 443",
	"tcp dst port 443 or 80", "port 80 or 443", "port 80 or port 443", "not port 22",
	"tcp port 80 and not src host 1.2.3.4", "portrange 1-1024", "tcp portrange 8000-8080", "udp dst portrange 50-60",
	"portrange 80-70", "src and dst port 53", "port 0x50", "port 010",
	"tcp and port 80", "tcp or udp", "not tcp", "not (tcp or udp)", "! icmp && ! arp",
	"tcp or udp and port 53", "udp and port 53 or icmp", "host 1.2.3.4 or 1.2.3.5 and port 80",
	"(host 1.2.3.4 or host 10.0.0.1) and (port 80 or port 443)",
	"host (1.2.3.4 or 1.2.3.5 or 10.0.0.1)", "host 1.2.3.4 and (10.0.0.1 or 1.2.3.5)",
	"port 80 and (tcp) or 443", "not not port 80 or 443", "ip and not tcp and not udp",
	"icmp or icmp6 or arp", "ip6 and tcp port 443", "ip and udp", "tcp src port 80 || tcp dst port 80",
	"src or dst host 10.1.2.3", "dst or src port 53", "src 1.2.3.4", "dst ::1", "dst and src host 10.0.0.1",
	"host 010.0.0.1", "net 10.1.2.3/8", "ip6 host 1.2.3.4", "ip port 80", "tcp host 1.2.3.4",
	"tcp or 80", "port 80 and tcp and 443", "(tcp) or 80", "host foo", "port http",
	"tcp[13] & 2 != 0", "ether host 00:11:22:33:44:55", "vlan", "greater 100", "port 70000", "src 10.0.0.0/8",
	"proto 6", "ip proto 1", "ip6 proto 17", "ip proto 6 or 17", "proto 0x84 and not ip6", "ip6 proto 58 or arp",
	"ip proto 256", "src proto 6", "tcp proto 6", "tcp portrange 25", "net 192.168 mask 255.255", "net 10.0.0.0 mask 255",
	"tcp[13] & 2 != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[tcpflags] & tcp-syn != 0 and not tcp[tcpflags] & tcp-ack != 0",
	"udp[8:2] = 0x1234", "icmp[icmptype] == icmp-echo", "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply",
	"ip6[6] == 17", "ether[0] & 1 != 0", "ether[12:2] = 0x800", "len > 100", "len <= 60", "greater 100", "less 100",
	"ip[2:2] - 20 > 5 * 2", "tcp[12] >> 4 < 5", "(tcp[12] & 0xf0) >> 2 > 20", "ip[0:4] = 1", "ip[2:3] = 1", "1 + 2 = 3",
	"icmp6[icmp6type] = icmp6-echo", "icmp6[0] = 128", "sctp[0] = 1", "arp[7] = 1", "rarp[7] = 3",
	"tcp[0:2] = tcp[2:2]", "ip[0] + 1 * 2 | 3 & 4 << 1 = 7", "udp[0:2] % 7 = 4", "ip[9] / 2 = 3", "ip[9] / 0 = 3",
	"port 80 and 1 = 1", "port 80 and (1 = 1)", "port 80 or 443 = 1", "port 80 and len > 100", "tcp and (ip[0] & 0xf) > 5",
	"port 80 and (443 or 53)", "udp[4:2] - 8 = len - 42", "ip[2:2] > len", "tcp[tcp[0]] = 1", "ip[0] ^ 1 = 2",
	"ip[6:2] & 0x1fff = 0 and ip[6:2] & 0x2000 != 0", "ip[8] < 64 or ip6[7] < 64", "tcp[13] = 18 || tcp[13] = 2",
	"ether host 00:11:22:33:44:55", "ether src 66:77:88:99:aa:bb", "ether dst 0:11:22:33:44:55 or 00:11:22:33:44:56",
	"ether src host 66:77:88:99:aa:bb and ether dst 00:11:22:33:44:55", "ether src and dst 00:11:22:33:44:55",
	"ether broadcast", "ether multicast", "broadcast", "multicast or arp", "not ether multicast",
	"ether proto 0x88cc", "ether proto 0x800 or 0x86dd", "ether proto 100", "ether", "ip broadcast", "ether net 1.2.3.4",
	"ether host 00:11:22:33:44", "ether[0] = 0xff and ether broadcast",
	"igmp", "igrp", "vrrp", "carp", "pim", "ah or esp", "not pim and ip6", "igmp host 1.2.3.4", "pim[0] = 1", "igmp or 1.2.3.4",
	"tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
	"ip[2:2] - ((ip[0]&0xf)<<2) - ((tcp[12]&0xf0)>>2) != 0", "ip[0] + tcp[0] = 5", "len - udp[4:2] > 20",
	"host 1.2.3.4 or", "(tcp", "tcp)", "and", "not", "host", "port 80 443",
}

type acceptFile struct {
	Tests []struct {
		DLT     string   `json:"DLT"`
		Aliases []string `json:"aliases"`
		Snaplen int      `json:"snaplen"`
		Skip    string   `json:"skip"`
		Linux   int      `json:"linuxext"`
	} `json:"tests"`
}

type corpusFilter struct {
	filter  string
	snaplen uint32
	fromLib bool
}

func filterList(t testing.TB, lt LinkType) []corpusFilter {
	var fs []corpusFilter
	for _, f := range commonFilters {
		fs = append(fs, corpusFilter{f, DefaultSnaplen, false}, corpusFilter{f, 96, false})
	}
	dir := filepath.Join("..", "..", "..", "shared", "fixtures", "bpf-filters")
	if b, err := os.ReadFile(filepath.Join(dir, "libpcap_filter_accept_tests.json")); err == nil {
		var af acceptFile
		if err := json.Unmarshal(b, &af); err != nil {
			t.Fatalf("accept tests: %v", err)
		}
		for _, tc := range af.Tests {
			if tc.DLT != tcpdumpDLT(lt) || tc.Linux != 0 {
				continue
			}
			sl := uint32(tc.Snaplen)
			if sl == 0 {
				sl = DefaultSnaplen
			}
			for _, a := range tc.Aliases {
				if strings.HasPrefix(a, "_") {
					continue
				}
				fs = append(fs, corpusFilter{a, sl, true})
			}
		}
	} else {
		t.Logf("libpcap accept corpus not found (%v); ../shared/fixtures is needed for the full differential test", err)
	}
	return fs
}

// TestLibpcapRejects: every filter libpcap's own tests require pcap_compile()
// to reject for our link types must be rejected by us too.
func TestLibpcapRejects(t *testing.T) {
	dir := filepath.Join(sharedFixtures(t), "bpf-filters")
	b, err := os.ReadFile(filepath.Join(dir, "libpcap_filter_reject_tests_common_dlts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Tests []struct {
			DLT  string `json:"DLT"`
			Expr string `json:"expr"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	total, rejected := 0, 0
	for _, tc := range rf.Tests {
		for _, lt := range []LinkType{EN10MB, LinuxSLL2} {
			if tc.DLT != lt.String() {
				continue
			}
			total++
			if _, err := Compile(tc.Expr, lt, 0); err != nil {
				rejected++
				continue
			}
			t.Errorf("%v %q: libpcap's tests require rejection, we compiled it", lt, tc.Expr)
		}
	}
	t.Logf("libpcap reject tests for EN10MB/LINUX_SLL2: rejected %d/%d", rejected, total)
}

// TestLibpcapApply runs libpcap's own per-packet expectations over its
// savefiles for the filters in our subset (no tcpdump needed).
func TestLibpcapApply(t *testing.T) {
	dir := filepath.Join(sharedFixtures(t), "bpf-filters")
	b, err := os.ReadFile(filepath.Join(dir, "libpcap_filter_apply_tests.json"))
	if err != nil {
		t.Fatal(err)
	}
	var af struct {
		Tests []struct {
			Expr     string `json:"expr"`
			Name     string `json:"name"`
			Results  []int  `json:"results"`
			Savefile string `json:"savefile"`
			Netmask  string `json:"netmask"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(b, &af); err != nil {
		t.Fatal(err)
	}
	var total, inSubset, agreed, otherLink int
	for _, tc := range af.Tests {
		total++
		link, pkts, err := readPcap(filepath.Join(dir, "savefiles", tc.Savefile))
		var lt LinkType
		switch {
		case err != nil:
			otherLink++
			continue
		case link == 1:
			lt = EN10MB
		case link == 276:
			lt = LinuxSLL2
		default:
			otherLink++
			continue
		}
		prog, err := Compile(tc.Expr, lt, 0)
		if err != nil {
			continue
		}
		inSubset++
		vm, err := xbpf.NewVM(prog)
		if err != nil {
			t.Fatalf("%s: %v", tc.Name, err)
		}
		if len(pkts) != len(tc.Results) {
			t.Errorf("%s: %d packets in %s, %d results", tc.Name, len(pkts), tc.Savefile, len(tc.Results))
			continue
		}
		ok := true
		for i, p := range pkts {
			got, _ := vm.Run(p)
			want := tc.Results[i]
			if (got != 0) != (want != 0) {
				t.Errorf("%s (%q on %s) packet %d: got %d, libpcap %d", tc.Name, tc.Expr, tc.Savefile, i+1, got, want)
				ok = false
			}
		}
		if ok {
			agreed++
		}
	}
	t.Logf("libpcap apply tests: %d total, %d on other link types or pcapng, %d in our subset, %d agree on every packet",
		total, otherLink, inSubset, agreed)
}

func TestDifferential(t *testing.T) {
	needTcpdump(t)
	for _, lt := range []LinkType{EN10MB, LinuxSLL2} {
		t.Run(lt.String(), func(t *testing.T) {
			ps := corpus(t, lt)
			fl := filterList(t, lt)
			prefetch(fl, lt)
			var optDep int
			var agreed, bothOK, outside, bothReject, libTotal, libOutside int
			for _, cf := range fl {
				ours, errO := Compile(cf.filter, lt, cf.snaplen)
				theirs, errT := libpcapCompile(cf.filter, lt, cf.snaplen)
				if cf.fromLib {
					libTotal++
				}
				switch {
				case errO != nil && errT != nil:
					bothReject++
					continue
				case errO != nil:
					var se *SyntaxError
					if !asSyntax(errO, &se) {
						t.Errorf("%q: rejected without a *SyntaxError: %v", cf.filter, errO)
					}
					outside++
					if cf.fromLib {
						libOutside++
					}
					continue
				case errT != nil:
					t.Errorf("%q: we accept a filter libpcap rejects (%v)", cf.filter, errT)
					continue
				}
				bothOK++
				diff, od, err := compare(cf.filter, lt, cf.snaplen, ours, theirs, ps)
				optDep += od
				if err != nil {
					t.Errorf("%q: %v", cf.filter, err)
					continue
				}
				if diff != "" {
					t.Errorf("%q (snaplen %d): verdicts differ: %s", cf.filter, cf.snaplen, diff)
					continue
				}
				agreed++
			}
			t.Logf("%v: %d packets; filters compiled by both: %d, same verdict on every packet: %d/%d; "+
				"outside the subset and rejected by us: %d (of them from libpcap's corpus: %d of %d); rejected by both: %d; "+
				"filter×packet verdicts where libpcap's optimizer changes the result and we match its unoptimized program: %d",
				lt, len(ps), bothOK, agreed, bothOK, outside, libOutside, libTotal, bothReject, optDep)
		})
	}
}
