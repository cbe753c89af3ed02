//go:build linux

package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	ibpf "github.com/triage-sh/triage/internal/bpf"
)

func TestLinkTypeOf(t *testing.T) {
	if lt, err := LinkTypeOf("any"); err != nil || lt != LinkTypeLinuxSLL2 {
		t.Errorf(`LinkTypeOf("any") = %d, %v; want 276`, lt, err)
	}
	if lt, err := LinkTypeOf("lo"); err != nil || lt != LinkTypeEN10MB {
		t.Errorf(`LinkTypeOf("lo") = %d, %v; want 1`, lt, err)
	}
	for _, name := range []string{"nosuchif0", "", "a-name-longer-than-ifnamsiz"} {
		if _, err := LinkTypeOf(name); !errors.Is(err, ErrNoInterface) {
			t.Errorf("LinkTypeOf(%q) = %v; want ErrNoInterface", name, err)
		}
	}
}

func TestLinkTypeOfUnsupported(t *testing.T) {
	ns := newNS(t)
	var err error
	var lt uint32
	ns.do(func() {
		// A tun device is ARPHRD_NONE.
		fd, e := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if e != nil {
			err = e
			return
		}
		defer unix.Close(fd)
		ifr, _ := unix.NewIfreq("tcaptun0")
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return
		}
		lt, err = LinkTypeOf("tcaptun0")
		if err == nil {
			return
		}
		if _, oerr := Open(Options{Interface: "tcaptun0"}); oerr == nil || oerr.Error() != err.Error() {
			t.Errorf("Open on a tun device: %v; want %v", oerr, err)
		}
	})
	if err == nil {
		t.Fatalf("LinkTypeOf(tun) = %d; want an error", lt)
	}
	if errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), "ARPHRD_NONE") {
		t.Fatalf("LinkTypeOf(tun): %v; want an error naming ARPHRD_NONE", err)
	}
	t.Log(err)
}

func TestOpenErrors(t *testing.T) {
	// No privilege needed: the interface is resolved before the socket.
	if _, err := Open(Options{Interface: "nosuchif0"}); !errors.Is(err, ErrNoInterface) {
		t.Errorf("unknown interface: %v; want ErrNoInterface", err)
	}
	if _, err := Open(Options{}); err == nil {
		t.Error("no interface: no error")
	}
	if _, err := Open(Options{Interface: "lo", SnapLen: -1}); err == nil {
		t.Error("negative snap length: no error")
	}
	if _, err := Open(Options{Interface: "lo", Direction: 7}); err == nil {
		t.Error("bad direction: no error")
	}
}

func TestOpenBadFilter(t *testing.T) {
	ns := newNS(t)
	var err error
	// Jumps past the end: the kernel refuses it.
	bad := []bpf.RawInstruction{{Op: 0x15, Jt: 5, Jf: 0, K: 1}, {Op: 0x06, K: 0}}
	ns.do(func() { _, err = Open(Options{Interface: "lo", Filter: bad}) })
	if err == nil || !strings.Contains(err.Error(), "rejected the filter") {
		t.Errorf("invalid program on lo: %v", err)
	}
	ns.do(func() { _, err = Open(Options{Interface: "any", Filter: bad}) })
	if err == nil {
		t.Errorf("invalid program on any: no error")
	}
}

func TestRingGeometry(t *testing.T) {
	ns := newNS(t)
	for _, c := range []struct {
		snap, ring   int
		minRing, bsz int
	}{
		{0, 0, 8 << 20, 512 << 10},
		{1500, 1 << 20, 8 << 20, 128 << 10},
		{1500, 32 << 20, 32 << 20, 128 << 10},
		{65535, 0, 8 << 20, 128 << 10},
	} {
		h := ns.open(t, Options{Interface: "lo", SnapLen: c.snap, RingBytes: c.ring})
		if h.RingBytes() < c.minRing || h.geo.blockSize != c.bsz {
			t.Errorf("snap %d ring %d: ring %d bytes in blocks of %d; want >= %d in blocks of %d", c.snap, c.ring, h.RingBytes(), h.geo.blockSize, c.minRing, c.bsz)
		}
		if c.snap == 0 && h.SnapLen() != DefaultSnapLen {
			t.Errorf("default snap length %d", h.SnapLen())
		}
		h.Close()
	}
}

// sendAll sends the payloads and returns them.
func sendAll(t testing.TB, c *net.UDPConn, n int, size func(i int) int) [][]byte {
	t.Helper()
	var sent [][]byte
	for i := range n {
		p := payloadN(i, size(i))
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, p)
	}
	return sent
}

// TestLoopback captures UDP on lo with a kernel filter: each datagram is
// read exactly once (the outgoing duplicate is dropped in the kernel), with
// its bytes, ports and lengths, and Stats counts exactly those.
func TestLoopback(t *testing.T) {
	ns := newNS(t)
	u := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	h := ns.open(t, Options{Interface: "lo", Filter: ethUDPDst(t, u.port)})
	if h.LinkType() != LinkTypeEN10MB {
		t.Fatalf("link type %d", h.LinkType())
	}
	lo := ns.ifindex(t, "lo")
	const n = 200
	start := time.Now()
	sent := sendAll(t, u.cli, n, func(i int) int { return 10 + i*7 })
	got := collect(t, h, n, nil, 5*time.Second, 300*time.Millisecond)
	if len(got) != n {
		t.Fatalf("read %d packets; sent %d", len(got), n)
	}
	for i, p := range got {
		d := decode(t, p.data, LinkTypeEN10MB)
		if d.dstPort != u.port || !bytes.Equal(d.payload, sent[i]) {
			t.Fatalf("packet %d: port %d, payload %q; want %d, %q", i, d.dstPort, d.payload, u.port, sent[i])
		}
		if want := 14 + 20 + 8 + len(sent[i]); p.ci.Length != want || p.ci.CaptureLength != want {
			t.Fatalf("packet %d: length %d/%d; want %d", i, p.ci.CaptureLength, p.ci.Length, want)
		}
		if p.ci.InterfaceIndex != lo {
			t.Fatalf("packet %d: ifindex %d; want %d", i, p.ci.InterfaceIndex, lo)
		}
		if p.ci.Timestamp.Before(start.Add(-time.Second)) || p.ci.Timestamp.After(time.Now()) {
			t.Fatalf("packet %d: timestamp %v", i, p.ci.Timestamp)
		}
	}
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets != n || st.Drops != 0 || st.Delivered != n {
		t.Fatalf("stats %+v; want %d packets, no drops", st, n)
	}
	// Accumulated: a second read does not reset.
	if st2, _ := h.Stats(); st2.Packets != n {
		t.Fatalf("stats not accumulated: %+v", st2)
	}
}

// TestLoopbackNoFilter: without a filter (the namespace's lo carries only
// the test's traffic), each datagram is still seen once.
func TestLoopbackNoFilter(t *testing.T) {
	ns := newNS(t)
	u := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	h := ns.open(t, Options{Interface: "lo"})
	const n = 50
	sendAll(t, u.cli, n, func(int) int { return 32 })
	got := collect(t, h, n, udpPort(t, 1, u.port), 5*time.Second, 300*time.Millisecond)
	if len(got) != n {
		t.Fatalf("read %d packets; sent %d", len(got), n)
	}
	if st, _ := h.Stats(); st.Packets != n {
		t.Fatalf("stats %+v; want %d packets", st, n)
	}
}

func TestSnapLen(t *testing.T) {
	ns := newNS(t)
	u := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	for _, c := range []struct {
		name          string
		snap, ret     int
		nilFilter     bool
		wantCap, size int
	}{
		{"snaplen", 100, 262144, false, 100, 1000},
		{"no filter", 100, 0, true, 100, 1000},
		{"filter returns less", 100, 60, false, 60, 1000},
		{"short packet", 100, 262144, false, 14 + 20 + 8 + 10, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := Options{Interface: "lo", SnapLen: c.snap}
			if !c.nilFilter {
				o.Filter = udpDstFilter(t, 14, 12, uint16(u.port), uint32(c.ret))
			}
			h := ns.open(t, o)
			sendAll(t, u.cli, 3, func(int) int { return c.size })
			keep := func(b []byte) bool {
				return len(b) >= 38 && int(binary.BigEndian.Uint16(b[36:])) == u.port
			}
			got := collect(t, h, 3, keep, 5*time.Second, 100*time.Millisecond)
			if len(got) != 3 {
				t.Fatalf("read %d packets; want 3", len(got))
			}
			for _, p := range got {
				if p.ci.CaptureLength != c.wantCap || p.ci.Length != 14+20+8+c.size {
					t.Fatalf("caplen %d len %d; want %d, %d", p.ci.CaptureLength, p.ci.Length, c.wantCap, 14+20+8+c.size)
				}
			}
			h.Close()
		})
	}
}

// TestKernelFilter: packets the filter rejects are not delivered, and the
// kernel counts only the accepted ones.
func TestKernelFilter(t *testing.T) {
	ns := newNS(t)
	yes := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	no := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	h := ns.open(t, Options{Interface: "lo", Filter: ethUDPDst(t, yes.port)})
	sendAll(t, no.cli, 100, func(int) int { return 20 })
	sendAll(t, yes.cli, 10, func(int) int { return 20 })
	sendAll(t, no.cli, 100, func(int) int { return 20 })
	got := collect(t, h, 10, nil, 5*time.Second, 300*time.Millisecond)
	if len(got) != 10 {
		t.Fatalf("read %d packets; want 10", len(got))
	}
	for _, p := range got {
		if d := decode(t, p.data, 1); d.dstPort != yes.port {
			t.Fatalf("delivered a packet to port %d", d.dstPort)
		}
	}
	if st, _ := h.Stats(); st.Packets != 10 || st.Delivered != 10 {
		t.Fatalf("stats %+v; want 10 packets", st)
	}
}

// TestBigPacket: a 60000-byte datagram on lo (MTU 65536) fits a block.
func TestBigPacket(t *testing.T) {
	ns := newNS(t)
	u := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	h := ns.open(t, Options{Interface: "lo", Filter: ethUDPDst(t, u.port)})
	sent := sendAll(t, u.cli, 3, func(int) int { return 60000 })
	got := collect(t, h, 3, nil, 5*time.Second, 200*time.Millisecond)
	if len(got) != 3 {
		t.Fatalf("read %d packets; want 3", len(got))
	}
	for i, p := range got {
		if d := decode(t, p.data, 1); !bytes.Equal(d.payload, sent[i]) || p.ci.Length != 60042 || p.ci.CaptureLength != 60042 {
			t.Fatalf("packet %d: %d/%d bytes", i, p.ci.CaptureLength, p.ci.Length)
		}
	}
}

func compileOrFatal(t testing.TB, filter string, lt ibpf.LinkType, snap uint32) []bpf.RawInstruction {
	t.Helper()
	prog, err := ibpf.Compile(filter, lt, snap)
	if err != nil {
		t.Fatalf("compiling %q: %v", filter, err)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestAnyLoopback: "any" builds correct SLL2 headers, runs the SLL2 filter
// rewritten in the kernel, and sees each loopback datagram once.
func TestAnyLoopback(t *testing.T) {
	ns := newNS(t)
	u := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	filter := "udp port " + itoa(u.port)
	h := ns.open(t, Options{Interface: "any", Filter: compileOrFatal(t, filter, ibpf.LinuxSLL2, 262144)})
	if h.LinkType() != LinkTypeLinuxSLL2 || h.UserSpaceFilter() {
		t.Fatalf("link type %d, user-space filter %v", h.LinkType(), h.UserSpaceFilter())
	}
	lo := ns.ifindex(t, "lo")
	const n = 100
	sent := sendAll(t, u.cli, n, func(i int) int { return 1 + i })
	got := collect(t, h, n, nil, 5*time.Second, 300*time.Millisecond)
	if len(got) != n {
		t.Fatalf("read %d packets; sent %d", len(got), n)
	}
	for i, p := range got {
		d := decode(t, p.data, LinkTypeLinuxSLL2)
		s := d.sll2
		if s == nil {
			t.Fatalf("packet %d: no SLL2 header: % x", i, p.data[:20])
		}
		if s.ProtocolType != layers.EthernetTypeIPv4 || s.InterfaceIndex != uint32(lo) || s.ARPHardwareType != layers.ARPHardwareTypeLoopback ||
			s.PacketType != layers.LinuxSLL2PacketTypeHost || s.AddrLength != 6 || !bytes.Equal(s.Addr, make([]byte, 6)) {
			t.Fatalf("packet %d: SLL2 header %+v (% x)", i, s, p.data[:20])
		}
		if !bytes.Equal(p.data[2:4], []byte{0, 0}) {
			t.Fatalf("packet %d: reserved field % x", i, p.data[2:4])
		}
		if d.dstPort != u.port || !bytes.Equal(d.payload, sent[i]) {
			t.Fatalf("packet %d: port %d payload %q", i, d.dstPort, d.payload)
		}
		if want := 20 + 20 + 8 + len(sent[i]); p.ci.Length != want || p.ci.CaptureLength != want || p.ci.InterfaceIndex != lo {
			t.Fatalf("packet %d: lengths %d/%d ifindex %d; want %d, %d", i, p.ci.CaptureLength, p.ci.Length, p.ci.InterfaceIndex, want, lo)
		}
	}
	if st, _ := h.Stats(); st.Packets != n || st.UserFiltered != 0 {
		t.Fatalf("stats %+v; want %d packets", st, n)
	}
}

// TestAnyRewrites: the kernel runs rewritten SLL2 programs with the SLL2
// semantics: "greater" counts the 20-byte header, snap lengths include it,
// and the header fields become ancillary loads.
func TestAnyRewrites(t *testing.T) {
	ns := newNS(t)
	u := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	lo := ns.ifindex(t, "lo")
	port := itoa(u.port)
	for _, c := range []struct {
		filter   string
		raw      []bpf.RawInstruction
		snap     int
		sizes    []int // payload sizes sent
		want     []int // payload sizes that must be captured
		wantCap  int   // expected CaptureLength (0: whole packet)
		userside bool
	}{
		// 20+20+8+100 = 148, 20+20+8+300 = 348.
		{filter: "udp port " + port + " and greater 200", sizes: []int{100, 300, 100, 300}, want: []int{300, 300}},
		{filter: "udp port " + port + " and less 200", sizes: []int{100, 300, 100}, want: []int{100, 100}},
		{filter: "udp port " + port, snap: 64, sizes: []int{100, 5}, want: []int{100, 5}, wantCap: 64},
		{filter: "udp port " + port, snap: 10, sizes: []int{100}, want: []int{100}, wantCap: 10},
		{raw: sll2FieldsFilter(t, uint32(lo), uint16(u.port), false), sizes: []int{7, 8}, want: []int{7, 8}},
		{raw: sll2FieldsFilter(t, uint32(lo)+1, uint16(u.port), false), sizes: []int{7}, want: nil},
		{raw: sll2FieldsFilter(t, uint32(lo), uint16(u.port), true), sizes: []int{7, 8}, want: []int{7, 8}, userside: true},
	} {
		name := c.filter
		if name == "" {
			name = "raw"
		}
		t.Run(name, func(t *testing.T) {
			raw := c.raw
			if raw == nil {
				raw = compileOrFatal(t, c.filter, ibpf.LinuxSLL2, 262144)
			}
			h := ns.open(t, Options{Interface: "any", Filter: raw, SnapLen: c.snap})
			if h.UserSpaceFilter() != c.userside {
				t.Fatalf("UserSpaceFilter %v; want %v", h.UserSpaceFilter(), c.userside)
			}
			for i, s := range c.sizes {
				u.cli.Write(payloadN(i, s))
			}
			var got []pkt
			if len(c.want) == 0 {
				got = collect(t, h, -1, nil, 300*time.Millisecond, 0)
			} else {
				got = collect(t, h, len(c.want), nil, 3*time.Second, 200*time.Millisecond)
			}
			if len(got) != len(c.want) {
				t.Fatalf("read %d packets; want %d", len(got), len(c.want))
			}
			for i, p := range got {
				full := 48 + c.want[i]
				if p.ci.Length != full {
					t.Errorf("packet %d: length %d; want %d", i, p.ci.Length, full)
				}
				wantCap := full
				if c.wantCap > 0 {
					wantCap = min(full, c.wantCap)
				}
				if p.ci.CaptureLength != wantCap {
					t.Errorf("packet %d: caplen %d; want %d", i, p.ci.CaptureLength, wantCap)
				}
				if p.ci.CaptureLength >= 20 && binary.BigEndian.Uint16(p.data) != 0x0800 {
					t.Errorf("packet %d: SLL2 protocol % x", i, p.data[:2])
				}
			}
			st, _ := h.Stats()
			if st.Packets != uint64(len(c.want)) || st.Delivered != uint64(len(c.want)) {
				t.Errorf("stats %+v; want %d packets", st, len(c.want))
			}
			if c.userside != (st.UserFiltered > 0) && len(c.sizes) > len(c.want) {
				t.Errorf("stats %+v: user-space rejections", st)
			}
			h.Close()
		})
	}
}

// sll2FieldsFilter accepts IPv4 UDP to port on interface ifindex, testing
// every SLL2 header field the kernel can provide (protocol, reserved,
// ifindex, ARPHRD type, packet type); with halen it also tests the address
// length, which the kernel cannot: that forces user-space filtering.
func sll2FieldsFilter(t testing.TB, ifindex uint32, port uint16, halen bool) []bpf.RawInstruction {
	ins := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0800, SkipTrue: 100},
		bpf.LoadAbsolute{Off: 2, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 100},
		bpf.LoadAbsolute{Off: 4, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: ifindex, SkipTrue: 100},
		bpf.LoadAbsolute{Off: 8, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.ARPHRD_LOOPBACK, SkipTrue: 100},
		bpf.LoadAbsolute{Off: 10, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.PACKET_HOST, SkipTrue: 100},
	}
	if halen {
		ins = append(ins,
			bpf.LoadAbsolute{Off: 11, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 6, SkipTrue: 100})
	}
	ins = append(ins,
		bpf.LoadConstant{Dst: bpf.RegA, Val: 0},
		bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: 48, SkipTrue: 100},
		bpf.LoadAbsolute{Off: 29, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 17, SkipTrue: 100},
		bpf.LoadMemShift{Off: 20},
		bpf.LoadIndirect{Off: 22, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(port), SkipTrue: 100},
		bpf.RetConstant{Val: 262144},
	)
	// Point the "reject" jumps at a final ret #0.
	rejectAt := len(ins)
	for i, in := range ins {
		if j, ok := in.(bpf.JumpIf); ok && j.SkipTrue == 100 {
			j.SkipTrue = uint8(rejectAt - i - 1)
			ins[i] = j
		}
	}
	ins = append(ins, bpf.RetConstant{Val: 0})
	raw, err := bpf.Assemble(ins)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestVeth captures between two network namespaces: on the interface by
// name and on "any", in both directions, with the SLL2 headers of a real
// Ethernet device.
func TestVeth(t *testing.T) {
	p := newVeth(t)
	const port = 9999
	var srv *net.UDPConn
	var err error
	p.a.do(func() { srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ipA), Port: port}) })
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Echo server in A.
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			srv.WriteToUDP(buf[:n], from)
		}
	}()
	var cli *net.UDPConn
	p.b.do(func() { cli, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(ipA), Port: port}) })
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	va := p.a.ifindex(t, p.va)

	named := p.a.open(t, Options{Interface: p.va, Filter: ethUDPDst(t, port)})
	anyH := p.a.open(t, Options{Interface: "any", Filter: compileOrFatal(t, "udp port 9999", ibpf.LinuxSLL2, 262144)})
	in := p.a.open(t, Options{Interface: p.va, Filter: compileOrFatal(t, "udp port 9999", ibpf.EN10MB, 262144), Direction: DirectionIn})
	out := p.a.open(t, Options{Interface: p.va, Filter: compileOrFatal(t, "udp port 9999", ibpf.EN10MB, 262144), Direction: DirectionOut})
	anyOut := p.a.open(t, Options{Interface: "any", Direction: DirectionOut, Filter: compileOrFatal(t, "udp", ibpf.LinuxSLL2, 262144)})

	const n = 50
	var sent [][]byte
	rbuf := make([]byte, 2048)
	for i := range n {
		pl := payloadN(i, 20+i)
		sent = append(sent, pl)
		cli.Write(pl)
		cli.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := cli.Read(rbuf); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
	}

	var vaMAC, vbMAC net.HardwareAddr
	p.a.do(func() {
		in, _ := net.InterfaceByName(p.va)
		vaMAC = in.HardwareAddr
	})
	p.b.do(func() {
		in, _ := net.InterfaceByName(p.vb)
		vbMAC = in.HardwareAddr
	})

	got := collect(t, named, n, nil, 5*time.Second, 200*time.Millisecond)
	if len(got) != n {
		t.Fatalf("named: read %d; want %d", len(got), n)
	}
	for i, pk := range got {
		d := decode(t, pk.data, 1)
		if d.eth == nil || !bytes.Equal(d.eth.DstMAC, vaMAC) || d.dstPort != port || !bytes.Equal(d.payload, sent[i]) || pk.ci.InterfaceIndex != va {
			t.Fatalf("named packet %d: %+v ifindex %d", i, d, pk.ci.InterfaceIndex)
		}
	}

	got = collect(t, anyH, 2*n, nil, 5*time.Second, 200*time.Millisecond)
	if len(got) != 2*n {
		t.Fatalf("any: read %d; want %d", len(got), 2*n)
	}
	for i, pk := range got {
		d := decode(t, pk.data, LinkTypeLinuxSLL2)
		s := d.sll2
		wantType, wantAddr := layers.LinuxSLL2PacketTypeHost, vbMAC
		if i%2 == 1 {
			wantType, wantAddr = layers.LinuxSLL2PacketTypeOutgoing, vaMAC
		}
		if s == nil || s.InterfaceIndex != uint32(va) || s.ARPHardwareType != layers.ARPHardwareTypeEthernet || s.PacketType != wantType || s.AddrLength != 6 {
			t.Fatalf("any packet %d: %+v", i, s)
		}
		if !bytes.Equal(s.Addr, wantAddr) {
			t.Fatalf("any packet %d: source %v; want %v", i, s.Addr, wantAddr)
		}
		if !bytes.Equal(d.payload, sent[i/2]) {
			t.Fatalf("any packet %d: payload %q", i, d.payload)
		}
	}

	for _, c := range []struct {
		h        *Handle
		name     string
		srcPort  bool
		linkType uint32
	}{{in, "in", false, 1}, {out, "out", true, 1}, {anyOut, "any out", true, LinkTypeLinuxSLL2}} {
		got := collect(t, c.h, n, nil, 5*time.Second, 200*time.Millisecond)
		if len(got) != n {
			t.Fatalf("%s: read %d; want %d", c.name, len(got), n)
		}
		for _, pk := range got {
			d := decode(t, pk.data, c.linkType)
			if (c.srcPort && d.srcPort != port) || (!c.srcPort && d.dstPort != port) {
				t.Fatalf("%s: ports %d -> %d", c.name, d.srcPort, d.dstPort)
			}
		}
	}
}

// TestVethVLAN: tags the kernel moved into metadata are put back into the
// frame, for 802.1Q and 802.1ad, byte for byte as sent.
func TestVethVLAN(t *testing.T) {
	p := newVeth(t)
	h := p.a.open(t, Options{Interface: p.va})
	short := p.a.open(t, Options{Interface: p.va, SnapLen: 30})
	// A "vlan" filter compiled for a live socket (the kernel's VLAN
	// metadata) sees the tag the kernel stripped.
	vprog, err := ibpf.CompileWithOptions("vlan 100 and udp dst port 4001", ibpf.EN10MB, 262144, ibpf.Options{KernelVLAN: true})
	if err != nil {
		t.Fatal(err)
	}
	vraw, err := bpf.Assemble(vprog)
	if err != nil {
		t.Fatal(err)
	}
	vlan100 := p.a.open(t, Options{Interface: p.va, Filter: vraw})
	var vaMAC, vbMAC net.HardwareAddr
	p.a.do(func() { in, _ := net.InterfaceByName(p.va); vaMAC = in.HardwareAddr })
	var fd int
	p.b.do(func() {
		var in *net.Interface
		if in, err = net.InterfaceByName(p.vb); err != nil {
			return
		}
		vbMAC = in.HardwareAddr
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return
		}
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: in.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	frame := func(tpid uint16, tci uint16, i int) []byte {
		var b []byte
		b = append(b, vaMAC...)
		b = append(b, vbMAC...)
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, tci)
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		payload := payloadN(i, 30)
		ip := []byte{0x45, 0, 0, byte(20 + 8 + len(payload)), 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1}
		b = append(b, ip...)
		b = binary.BigEndian.AppendUint16(b, 4000)
		b = binary.BigEndian.AppendUint16(b, 4001)
		b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
		b = append(b, 0, 0)
		return append(b, payload...)
	}
	var sent [][]byte
	for i, v := range []struct{ tpid, tci uint16 }{{0x8100, 3<<13 | 100}, {0x88a8, 200}, {0x8100, 1<<12 | 4094}} {
		f := frame(v.tpid, v.tci, i)
		sent = append(sent, f)
		if _, err := unix.Write(fd, f); err != nil {
			t.Fatal(err)
		}
	}
	keep := func(b []byte) bool { return len(b) > 12 && bytes.Equal(b[6:12], vbMAC) }
	got := collect(t, h, len(sent), keep, 5*time.Second, 200*time.Millisecond)
	if len(got) != len(sent) {
		t.Fatalf("read %d frames; want %d", len(got), len(sent))
	}
	for i, pk := range got {
		if !bytes.Equal(pk.data, sent[i]) || pk.ci.Length != len(sent[i]) {
			t.Fatalf("frame %d (len %d):\n got % x\nwant % x", i, pk.ci.Length, pk.data, sent[i])
		}
	}
	got = collect(t, short, len(sent), keep, 5*time.Second, 200*time.Millisecond)
	for i, pk := range got {
		if !bytes.Equal(pk.data, sent[i][:30]) || pk.ci.Length != len(sent[i]) {
			t.Fatalf("snap 30 frame %d (len %d): got % x", i, pk.ci.Length, pk.data)
		}
	}
	got = collect(t, vlan100, -1, nil, 300*time.Millisecond, 0)
	if len(got) != 1 || !bytes.Equal(got[0].data, sent[0]) {
		t.Fatalf("vlan 100 filter: %d frames; want the first one", len(got))
	}
}

// TestCancel: a blocked ReadPacket returns ctx.Err() soon after the cancel,
// also while matching packets keep arriving.
func TestCancel(t *testing.T) {
	ns := newNS(t)
	u := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	h := ns.open(t, Options{Interface: "lo", Filter: ethUDPDst(t, u.port)})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := h.ReadPacket(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	if _, _, err := h.ReadPacket(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}

	var worst time.Duration
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		var at time.Time
		go func() {
			time.Sleep(20 * time.Millisecond)
			at = time.Now()
			cancel()
		}()
		_, _, err := h.ReadPacket(ctx)
		lat := time.Since(at)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadPacket: %v", err)
		}
		worst = max(worst, lat)
	}
	t.Logf("worst cancel latency over 20 waits: %v", worst)
	if worst > time.Second {
		t.Fatalf("cancel latency %v", worst)
	}

	// Under a flood of matching packets.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b := make([]byte, 16)
		for {
			select {
			case <-stop:
				return
			default:
				u.cli.Write(b)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	ctx, cancel = context.WithCancel(context.Background())
	n := 0
	for {
		_, _, err := h.ReadPacket(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			break
		}
		if n++; n == 1000 {
			cancel()
		}
	}
	cancel()
}

// TestCloseWhileReading closes handles while a reader is inside the ring
// and while other goroutines call Stats and Close (run with -race).
func TestCloseWhileReading(t *testing.T) {
	ns := newNS(t)
	u := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b := make([]byte, 64)
		for {
			select {
			case <-stop:
				return
			default:
				u.cli.Write(b)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	filter := ethUDPDst(t, u.port)
	iters := 100
	if testing.Short() {
		iters = 20
	}
	for i := range iters {
		var h *Handle
		var err error
		ns.do(func() { h, err = Open(Options{Interface: "lo", Filter: filter, SnapLen: 128}) })
		if err != nil {
			t.Fatal(err)
		}
		readErr := make(chan error, 1)
		go func() {
			sum := 0
			for {
				data, _, err := h.ReadPacket(context.Background())
				if err != nil {
					readErr <- err
					return
				}
				for _, b := range data {
					sum += int(b)
				}
			}
		}()
		var cw sync.WaitGroup
		for range 3 {
			cw.Add(1)
			go func() {
				defer cw.Done()
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				if i%2 == 0 {
					h.Stats()
				}
				if err := h.Close(); err != nil {
					t.Error(err)
				}
			}()
		}
		cw.Wait()
		select {
		case err := <-readErr:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("iteration %d: reader: %v; want ErrClosed", i, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("iteration %d: reader not woken by Close", i)
		}
		if _, _, err := h.ReadPacket(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("ReadPacket after Close: %v", err)
		}
		st, err := h.Stats()
		if err != nil || st.Delivered > st.Packets {
			t.Fatalf("Stats after Close: %+v, %v", st, err)
		}
	}
}

// TestRingOverflow: with a tiny ring and a reader that does not keep up,
// the kernel's drops are counted, and every accepted packet is either
// delivered or dropped.
func TestRingOverflow(t *testing.T) {
	ns := newNS(t)
	u := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	h := ns.open(t, Options{Interface: "lo", Filter: ethUDPDst(t, u.port),
		ring: &ringGeometry{blockSize: 16 << 10, blockNr: 4, timeout: time.Millisecond}})
	const n = 2000
	for i := range n {
		u.cli.Write(payloadN(i, 1000))
		if i%100 == 99 {
			time.Sleep(time.Millisecond) // stay under netdev_max_backlog
		}
	}
	time.Sleep(100 * time.Millisecond)
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Drops == 0 || st.FreezeQueueCount == 0 {
		t.Fatalf("no drops counted: %+v", st)
	}
	got := collect(t, h, -1, nil, 300*time.Millisecond, 0)
	st, _ = h.Stats()
	t.Logf("sent %d, read %d, stats %+v", n, len(got), st)
	if st.Packets != st.Delivered+st.Drops || st.Delivered != uint64(len(got)) || st.Packets > n {
		t.Fatalf("stats %+v after reading %d of %d", st, len(got), n)
	}
}

const noCapEnv = "CAPTURE_TEST_NOCAP_CHILD"

// TestNoCapNetRaw re-runs itself without CAP_NET_RAW: Open gives
// ErrPermission (and LinkTypeOf still works).
func TestNoCapNetRaw(t *testing.T) {
	if os.Getenv(noCapEnv) == "1" {
		status, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "CapEff:") {
				t.Log(l)
			}
		}
		if _, err := LinkTypeOf("lo"); err != nil {
			t.Fatalf("LinkTypeOf without CAP_NET_RAW: %v", err)
		}
		for _, iface := range []string{"lo", "any"} {
			_, err := Open(Options{Interface: iface})
			if !errors.Is(err, ErrPermission) {
				t.Fatalf("Open(%s) without CAP_NET_RAW: %v; want ErrPermission", iface, err)
			}
			t.Logf("Open(%s): %v", iface, err)
		}
		if _, err := Open(Options{Interface: "nosuchif0"}); !errors.Is(err, ErrNoInterface) {
			t.Fatalf("unknown interface without CAP_NET_RAW: %v", err)
		}
		return
	}
	needRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-test.run=^TestNoCapNetRaw$", "-test.v", "-test.count=1"}
	var cmd *exec.Cmd
	if sp, err := exec.LookPath("setpriv"); err == nil {
		cmd = exec.Command(sp, append([]string{"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-net_raw", "--", self}, args...)...)
	} else if cs, err := exec.LookPath("capsh"); err == nil {
		cmd = exec.Command(cs, append([]string{"--drop=cap_net_raw", "--inh=", "--", "-c", `exec "$0" "$@"`, self}, args...)...)
	} else {
		t.Skip("skipped: neither setpriv nor capsh is installed")
	}
	cmd.Env = append(os.Environ(), noCapEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s\n%s", strings.Join(cmd.Args, " "), out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNoCapNetRaw") {
		t.Fatalf("child: %v", err)
	}
}

func TestDirectionString(t *testing.T) {
	if DirectionIn.String() != "in" || DirectionOut.String() != "out" || DirectionInOut.String() != "inout" {
		t.Fatal("Direction.String")
	}
}

// TestInterfaceGone: a down interface cannot be opened; one that goes down
// or disappears while captured ends ReadPacket with an error saying so,
// instead of blocking forever.
func TestInterfaceGone(t *testing.T) {
	p := newVeth(t)
	run(t, "ip", "-n", p.nsA, "link", "set", p.va, "down")
	var err error
	p.a.do(func() { _, err = Open(Options{Interface: p.va}) })
	if err == nil || !strings.Contains(err.Error(), "down") {
		t.Fatalf("Open on a down interface: %v", err)
	}
	run(t, "ip", "-n", p.nsA, "link", "set", p.va, "up")

	for _, action := range []string{"down", "del"} {
		h := p.a.open(t, Options{Interface: p.va})
		errc := make(chan error, 1)
		go func() {
			for {
				if _, _, err := h.ReadPacket(context.Background()); err != nil {
					errc <- err
					return
				}
			}
		}()
		time.Sleep(50 * time.Millisecond)
		if action == "down" {
			run(t, "ip", "-n", p.nsA, "link", "set", p.va, "down")
		} else {
			run(t, "ip", "-n", p.nsA, "link", "del", p.va)
		}
		select {
		case err := <-errc:
			t.Logf("%s: %v", action, err)
			if errors.Is(err, ErrClosed) || (action == "del") != errors.Is(err, ErrNoInterface) {
				t.Fatalf("%s: %v", action, err)
			}
		case <-time.After(3 * time.Second):
			h.Close()
			t.Fatalf("link %s: ReadPacket still blocked", action)
		}
		h.Close()
		if action == "down" {
			run(t, "ip", "-n", p.nsA, "link", "set", p.va, "up")
		}
	}
}

// TestFilterFromFirstPacket: the filter is attached before the socket is
// bound, so traffic flowing while Open runs never slips through unfiltered.
func TestFilterFromFirstPacket(t *testing.T) {
	ns := newNS(t)
	noise := ns.udp(t, "127.0.0.1:0", "127.0.0.1")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b := make([]byte, 16)
		for {
			select {
			case <-stop:
				return
			default:
				noise.cli.Write(b)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for _, iface := range []string{"lo", "any"} {
		for range 10 {
			filter := ethUDPDst(t, 9)
			if iface == "any" {
				filter = udpDstFilter(t, 20, 0, 9, 262144)
			}
			h := ns.open(t, Options{Interface: iface, Filter: filter})
			if got := collect(t, h, -1, nil, 20*time.Millisecond, 0); len(got) != 0 {
				t.Fatalf("%s: %d packets the filter rejects were delivered", iface, len(got))
			}
			h.Close()
		}
	}
}

func TestPromiscuous(t *testing.T) {
	p := newVeth(t)
	promisc := func() string {
		out, err := exec.Command("ip", "-n", p.nsA, "-d", "link", "show", p.va).CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Split(strings.Join(strings.Fields(string(out)), " "), " promiscuity ")[1:] {
			return strings.Fields(f)[0]
		}
		t.Fatalf("no promiscuity in %s", out)
		return ""
	}
	if got := promisc(); got != "0" {
		t.Fatalf("promiscuity %s before", got)
	}
	h := p.a.open(t, Options{Interface: p.va, Promiscuous: true})
	if got := promisc(); got != "1" {
		t.Fatalf("promiscuity %s while open", got)
	}
	h.Close()
	if got := promisc(); got != "0" {
		t.Fatalf("promiscuity %s after Close", got)
	}
}
