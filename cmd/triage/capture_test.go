package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	xbpf "golang.org/x/net/bpf"
)

func vm(t *testing.T, raw []xbpf.RawInstruction) *xbpf.VM {
	t.Helper()
	prog, ok := xbpf.Disassemble(raw)
	if !ok {
		t.Fatalf("cannot disassemble %v", raw)
	}
	v, err := xbpf.NewVM(prog)
	if err != nil {
		t.Fatalf("program rejected by the VM: %v", err)
	}
	return v
}

// samplePackets are a few frames of the kinds the filters above name,
// with an Ethernet header or, for LINUX_SLL2, a cooked v2 header.
func samplePackets(t *testing.T, linkType string) [][]byte {
	t.Helper()
	mac1, mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	v4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, TTL: 64, Protocol: p, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	}
	v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	type frame struct {
		et     layers.EthernetType
		layers []gopacket.SerializableLayer
	}
	tcp := func(sp, dp layers.TCPPort, syn, fin bool) *layers.TCP {
		return &layers.TCP{SrcPort: sp, DstPort: dp, SYN: syn, FIN: fin, ACK: !syn, Window: 1000}
	}
	frames := []frame{
		{layers.EthernetTypeIPv4, []gopacket.SerializableLayer{v4(layers.IPProtocolTCP), tcp(40000, 80, true, false)}},
		{layers.EthernetTypeIPv4, []gopacket.SerializableLayer{v4(layers.IPProtocolTCP), tcp(80, 40000, false, true)}},
		{layers.EthernetTypeIPv4, []gopacket.SerializableLayer{v4(layers.IPProtocolTCP), tcp(40000, 443, false, false)}},
		{layers.EthernetTypeIPv4, []gopacket.SerializableLayer{v4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 5353, DstPort: 53}}},
		{layers.EthernetTypeIPv4, []gopacket.SerializableLayer{v4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 53, DstPort: 5353}}},
		{layers.EthernetTypeIPv4, []gopacket.SerializableLayer{v4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}}},
		{layers.EthernetTypeIPv6, []gopacket.SerializableLayer{v6, &layers.UDP{SrcPort: 1000, DstPort: 53}}},
		{layers.EthernetTypeARP, []gopacket.SerializableLayer{&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: mac1, SourceProtAddress: []byte{10, 0, 0, 1}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}}}},
	}
	var out [][]byte
	for _, f := range frames {
		for _, l := range f.layers {
			switch x := l.(type) {
			case *layers.TCP:
				_ = x.SetNetworkLayerForChecksum(f.layers[0].(gopacket.NetworkLayer))
			case *layers.UDP:
				_ = x.SetNetworkLayerForChecksum(f.layers[0].(gopacket.NetworkLayer))
			}
		}
		buf := gopacket.NewSerializeBuffer()
		ls := append([]gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: f.et}}, f.layers...)
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, append(ls, gopacket.Payload("triage"))...); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if linkType == "LINUX_SLL2" {
			// protocol, reserved, ifindex, hatype 1, pkttype 0, addrlen 6, addr.
			h := []byte{byte(f.et >> 8), byte(f.et), 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}
			b = append(h, b[14:]...)
		}
		out = append(out, b)
	}
	return out
}

// TestCaptureCompileContract checks `triage capture --compile F -o json`
// against the numbers `tcpdump -ddd` prints for the same filter and link
// type: the contract scripts rely on.
func TestCaptureCompileContract(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump is not installed (make tools installs it): it is the oracle for --compile")
	}
	cases := []struct{ filter, linkType string }{
		{"tcp port 80", "EN10MB"},
		{"udp and dst port 53", "LINUX_SLL2"},
		{"tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", "EN10MB"},
		{"icmp or arp", "EN10MB"},
		{"ip6 and not tcp", "LINUX_SLL2"},
		{"", "EN10MB"},
	}
	for _, c := range cases {
		t.Run(c.filter+"/"+c.linkType, func(t *testing.T) {
			r := triage(t, nil, false, "capture", "--compile", c.filter, "--link-type", c.linkType, "-o", "json")
			if r.code != exitOK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var got []struct{ Op, Jt, Jf, K uint32 }
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("stdout is not a JSON array: %v\n%s", err, r.stdout)
			}
			out, err := exec.Command(tcpdump, "-y", c.linkType, "-ddd", c.filter).Output()
			if err != nil {
				t.Fatalf("tcpdump -ddd: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			n, _ := strconv.Atoi(lines[0])
			if n != len(lines)-1 || len(got) == 0 {
				t.Fatalf("tcpdump printed %q", out)
			}
			// libpcap optimizes, we do not: the programs may differ
			// instruction by instruction but must give the same verdict
			// and snap length on every packet (internal/bpf's differential
			// test does this over the whole corpus).
			var theirs []xbpf.RawInstruction
			for _, l := range lines[1:] {
				var op, jt, jf, k uint32
				if _, err := fmt.Sscan(l, &op, &jt, &jf, &k); err != nil {
					t.Fatalf("tcpdump line %q: %v", l, err)
				}
				theirs = append(theirs, xbpf.RawInstruction{Op: uint16(op), Jt: uint8(jt), Jf: uint8(jf), K: k})
			}
			var ours []xbpf.RawInstruction
			for _, g := range got {
				ours = append(ours, xbpf.RawInstruction{Op: uint16(g.Op), Jt: uint8(g.Jt), Jf: uint8(g.Jf), K: g.K})
			}
			vmOurs, vmTheirs := vm(t, ours), vm(t, theirs)
			accepted := 0
			for i, pkt := range samplePackets(t, c.linkType) {
				a, err1 := vmOurs.Run(pkt)
				b, err2 := vmTheirs.Run(pkt)
				if a != b || err1 != nil || err2 != nil {
					t.Errorf("packet %d: ours %d (%v), tcpdump's %d (%v)", i, a, err1, b, err2)
				}
				if a > 0 {
					accepted++
				}
			}
			if accepted == 0 {
				t.Errorf("no sample packet is accepted: the comparison proves nothing")
			}
		})
	}
}

func TestCaptureCompileErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"capture", "--compile", "tcp port", "-o", "json"}, exitError, "position"},
		{[]string{"capture", "--compile", "host foo.example", "-o", "json"}, exitError, "foo.example"},
		{[]string{"capture", "--compile", "tcp", "--link-type", "PPP"}, exitUsage, "--link-type"},
		{[]string{"capture", "-f", "tcp"}, exitUsage, "-w FILE"},
		{[]string{"capture", "-f", "tcp", "-w", "-", "-o", "json"}, exitUsage, "drop -o json"},
		{[]string{"capture", "-f", "tcp", "udp", "-w", "x"}, exitUsage, "not both"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := triage(t, nil, false, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d (stderr %q)", r.code, c.code, r.stderr)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr %q lacks %q", r.stderr, c.want)
			}
			if strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", r.stderr)
			}
		})
	}
}

func TestCaptureCompileText(t *testing.T) {
	r := triage(t, nil, false, "capture", "--compile", "udp port 53")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "(000) ") || !strings.Contains(r.stdout, "262144") {
		t.Errorf("text program:\n%s", r.stdout)
	}
}

// TestCaptureEndToEnd runs `triage capture` against a real sidecar on
// loopback: the script contract (-o json trailer, exit 0 at the limit), a
// pcapng on stdout, and Ctrl-C leaving a valid file.
func TestCaptureEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("packet capture needs root (CAP_NET_RAW)")
	}
	addr, dev := startSidecar(t)
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.LocalAddr().(*net.UDPAddr).Port
	stopSend := make(chan struct{})
	go func() {
		c, err := net.Dial("udp", l.LocalAddr().String())
		if err != nil {
			return
		}
		defer c.Close()
		for {
			select {
			case <-stopSend:
				return
			case <-time.After(10 * time.Millisecond):
				_, _ = c.Write([]byte("hello"))
			}
		}
	}()
	defer close(stopSend)
	filter := fmt.Sprintf("udp and port %d", port)
	base := []string{"--dev", dev, "--addr", addr, "capture", "-i", "lo", "-f", filter}

	t.Run("file json", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.pcapng")
		r := triage(t, nil, false, append(base, "--duration", "1s", "-w", path, "-o", "json")...)
		if r.code != exitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var got struct {
			File        string `json:"file"`
			Packets     int    `json:"packets"`
			Bytes       int64  `json:"bytes"`
			KernelDrops int    `json:"kernel_drops"`
			StopReason  string `json:"stop_reason"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		n, size := countPackets(t, path)
		if got.StopReason != "duration" || got.Packets != n || n < 10 || got.Bytes != size || got.File != path {
			t.Errorf("json %+v; file has %d packets, %d bytes", got, n, size)
		}
	})

	t.Run("dev null", func(t *testing.T) {
		r := triage(t, nil, false, append(base, "-c", "3", "-w", os.DevNull, "-o", "json")...)
		if r.code != exitOK || !strings.Contains(r.stdout, `"stop_reason": "count"`) {
			t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("stdout", func(t *testing.T) {
		r := triage(t, nil, false, append(base, "-c", "5", "-w", "-")...)
		if r.code != exitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		path := filepath.Join(t.TempDir(), "c.pcapng")
		if err := os.WriteFile(path, []byte(r.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		if n, _ := countPackets(t, path); n != 5 {
			t.Errorf("%d packets on stdout, want 5", n)
		}
		if !strings.Contains(r.stderr, "captured 5 packets") || !strings.Contains(r.stderr, "packet count") {
			t.Errorf("stderr summary: %q", r.stderr)
		}
	})

	t.Run("ctrl-c", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.pcapng")
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(700*time.Millisecond, cancel)
		var out, errb bytes.Buffer
		start := time.Now()
		code := run(ctx, append(base, "--duration", "30s", "-w", path), env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }})
		if code != exitOK || time.Since(start) > 10*time.Second {
			t.Fatalf("exit %d after %v: %s", code, time.Since(start), errb.String())
		}
		if n, _ := countPackets(t, path); n < 3 {
			t.Errorf("%d packets after Ctrl-C", n)
		}
		if !strings.Contains(out.String(), "stopped by request") {
			t.Errorf("summary: %q", out.String())
		}
	})
}

// countPackets reads a pcapng file with pcapgo and, when installed, tcpdump.
func countPackets(t *testing.T, path string) (int, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{})
	if err != nil {
		t.Fatalf("%s is not pcapng: %v", path, err)
	}
	n := 0
	for {
		_, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("packet %d: %v", n, err)
		}
		n++
	}
	if bin, err := exec.LookPath("tcpdump"); err == nil {
		out, err := exec.Command(bin, "-n", "-r", path).Output()
		if err != nil {
			t.Errorf("tcpdump -r: %v", err)
		} else if c := strings.Count(string(out), "\n"); c != n {
			t.Errorf("tcpdump reads %d packets, pcapgo %d", c, n)
		}
	}
	return n, st.Size()
}
