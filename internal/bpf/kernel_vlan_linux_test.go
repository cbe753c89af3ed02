package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	xbpf "golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ---- network namespaces ----

func needNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (ip netns add) and AF_PACKET sockets")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2): apt-get install -y iproute2")
	}
}

var netnsSeq atomic.Int32

func ipCmd(t *testing.T, args ...string) error {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newNetns creates a network namespace with a veth pair tva <-> tvb, both
// up, and deletes it when the test ends.
func newNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("bpftest-%d-%d", os.Getpid(), netnsSeq.Add(1))
	if err := ipCmd(t, "netns", "add", name); err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := exec.Command("ip", "netns", "del", name).Run(); err != nil {
			t.Errorf("ip netns del %s: %v", name, err)
		}
	})
	for _, args := range [][]string{
		{"-n", name, "link", "add", "name", "tva", "type", "veth", "peer", "name", "tvb"},
		{"-n", name, "link", "set", "tva", "up"},
		{"-n", name, "link", "set", "tvb", "up"},
	} {
		if err := ipCmd(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

// inNetns runs f on an OS thread that has joined the namespace; the thread
// is never returned to the scheduler (it exits with its goroutine), so no
// other goroutine runs in the namespace. Sockets f opens stay in it.
func inNetns(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func attachFilter(fd int, prog []xbpf.Instruction) error {
	raw, err := xbpf.Assemble(prog)
	if err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog)
}

// packetSocket opens an AF_PACKET socket on ifname in the current
// namespace; with prog, the filter is attached before the socket is bound,
// so that it never queues an unfiltered packet.
func packetSocket(ifname string, prog []xbpf.Instruction) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if prog != nil {
		if err := attachFilter(fd, prog); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("SO_ATTACH_FILTER: %w", err)
		}
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// ---- live libpcap oracle ----

// libpcapLiveCompile compiles filter as libpcap does for a live capture on
// an Ethernet interface of this kernel (tcpdump -i IFACE -d), which is where
// it uses the VLAN ancillary loads.
func libpcapLiveCompile(ns, filter string, snaplen uint32, optimize bool) ([]xbpf.Instruction, error) {
	return runTcpdumpArgs([]string{"ip", "netns", "exec", ns}, []string{"-i", "tva"}, filter, snaplen, optimize)
}

func hasExtensions(prog []xbpf.Instruction) bool {
	for _, ins := range prog {
		if e, ok := ins.(xbpf.LoadExtension); ok && e.Num != xbpf.ExtLen {
			return true
		}
	}
	return false
}

// TestKernelVLANDifferential compares KernelVLAN programs with what libpcap
// compiles for a live Linux capture, on every corpus frame both as it is and
// as the kernel presents it after moving the outer tag into metadata.
func TestKernelVLANDifferential(t *testing.T) {
	needTcpdump(t)
	needNetns(t)
	ns := newNetns(t)
	if p, err := libpcapLiveCompile(ns, "vlan", DefaultSnaplen, true); err != nil || !hasExtensions(p) {
		t.Skipf("this libpcap does not use the VLAN BPF extensions on a live capture (%v)", err)
	}
	var views []kernelView
	for _, p := range corpus(t, EN10MB) {
		views = append(views, kernelViews(p.data)...)
	}
	var same, withVLAN, agreed, bothReject, optDep int
	for _, cf := range filterList(t, EN10MB) {
		plain, errP := Compile(cf.filter, EN10MB, cf.snaplen)
		ours, errO := CompileWithOptions(cf.filter, EN10MB, cf.snaplen, Options{KernelVLAN: true})
		if (errP == nil) != (errO == nil) {
			t.Errorf("%q: Compile %v, KernelVLAN %v", cf.filter, errP, errO)
			continue
		}
		if errO != nil {
			continue
		}
		if !hasExtensions(ours) {
			if fmt.Sprint(ours) != fmt.Sprint(plain) {
				t.Errorf("%q: KernelVLAN changed a program without vlan", cf.filter)
			}
			same++
			continue
		}
		withVLAN++
		theirs, errT := libpcapLiveCompile(ns, cf.filter, cf.snaplen, true)
		if errT != nil {
			bothReject++
			t.Errorf("%q: we compile it, libpcap (live) rejects it: %v", cf.filter, errT)
			continue
		}
		ro, err := xbpf.Assemble(ours)
		if err != nil {
			t.Fatalf("%q: %v", cf.filter, err)
		}
		rt, err := xbpf.Assemble(theirs)
		if err != nil {
			t.Fatalf("%q: libpcap: %v", cf.filter, err)
		}
		var ru []xbpf.RawInstruction
		ok := true
		for _, v := range views {
			a, errA := runKernel(ro, v)
			b, errB := runKernel(rt, v)
			if errA != nil || errB != nil {
				t.Errorf("%q: %v / %v", cf.filter, errA, errB)
				ok = false
				break
			}
			if a == b {
				continue
			}
			if ru == nil {
				unopt, err := libpcapLiveCompile(ns, cf.filter, cf.snaplen, false)
				if err == nil {
					ru, err = xbpf.Assemble(unopt)
				}
				if err != nil {
					t.Fatalf("%q: libpcap unoptimized: %v", cf.filter, err)
				}
			}
			if u, _ := runKernel(ru, v); u == a {
				optDep++
				continue
			}
			t.Errorf("%q: frame % x (vlan metadata %+v): ours %d, libpcap %d", cf.filter, v.data, v.meta, a, b)
			ok = false
			break
		}
		if ok {
			agreed++
		}
	}
	if withVLAN == 0 {
		t.Fatal("no filter used vlan")
	}
	t.Logf("KernelVLAN: %d frame views; filters with vlan compiled by both: %d, same verdict on every view: %d/%d; "+
		"filters without vlan (program identical to Compile's): %d; optimizer-dependent verdicts matched unoptimized: %d",
		len(views), withVLAN, agreed, withVLAN, same, optDep)
}

// TestKernelInterpreter checks the test's kernel interpreter against
// x/net/bpf's VM on programs without extensions.
func TestKernelInterpreter(t *testing.T) {
	ps := corpus(t, EN10MB)
	n := 0
	for _, f := range commonFilters {
		prog, err := Compile(f, EN10MB, 96)
		if err != nil {
			continue
		}
		vm, err := xbpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := xbpf.Assemble(prog)
		for _, p := range ps {
			want, _ := vm.Run(p.data)
			got, err := runKernel(raw, kernelView{data: p.data})
			if err != nil || got != uint32(want) {
				t.Fatalf("%q on %s: interpreter %d (%v), VM %d", f, p.name, got, err, want)
			}
			n++
		}
	}
	t.Logf("interpreter agrees with the VM on %d filter×packet runs", n)
}

// ---- the real kernel ----

// TestKernelVLANCapture attaches programs to an AF_PACKET socket on one end
// of a veth pair and sends tagged and untagged frames from the other end:
// the kernel takes the outer tag out of the frame before the filter runs,
// so only KernelVLAN programs see VLANs there.
func TestKernelVLANCapture(t *testing.T) {
	needNetns(t)
	ns := newNetns(t)
	sub := true
	if err := ipCmd(t, "-n", ns, "link", "add", "link", "tva", "name", "tva.10", "type", "vlan", "id", "10"); err != nil {
		t.Logf("no VLAN subinterface (this kernel lacks 802.1Q device support?), tagged frames are sent raw only: %v", err)
		sub = false
	} else if err := ipCmd(t, "-n", ns, "link", "set", "tva.10", "up"); err != nil {
		t.Fatal(err)
	}

	// UDP 10.0.0.1:40000 > 10.0.0.2:5555 carrying a marker, behind tags
	// (outermost first; the outer one with TPID outer).
	udp := func(marker string, outer layers.EthernetType, tags ...layers.Dot1Q) []byte {
		eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
		ls := []gopacket.SerializableLayer{eth}
		if len(tags) > 0 {
			eth.EthernetType = outer
		}
		for i := range tags {
			tag := tags[i]
			tag.Type = layers.EthernetTypeIPv4
			if i+1 < len(tags) {
				tag.Type = layers.EthernetTypeDot1Q
			}
			ls = append(ls, &tag)
		}
		return serialize(append(ls,
			&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP, SrcIP: ip4("10.0.0.1"), DstIP: ip4("10.0.0.2")},
			&layers.UDP{SrcPort: 40000, DstPort: 5555},
			gopacket.Payload("triage-bpf-"+marker))...)
	}
	q, ad := layers.EthernetTypeDot1Q, layers.EthernetTypeQinQ
	type frame struct {
		name string
		dev  string
		data []byte
	}
	frames := []frame{
		{"untagged", "tva", udp("untagged", 0)},
		{"q10", "tva", udp("q10", q, layers.Dot1Q{VLANIdentifier: 10})},
		{"q10-pcp5", "tva", udp("q10-pcp5", q, layers.Dot1Q{VLANIdentifier: 10, Priority: 5})},
		{"q20", "tva", udp("q20", q, layers.Dot1Q{VLANIdentifier: 20})},
		{"ad20-q10", "tva", udp("ad20-q10", ad, layers.Dot1Q{VLANIdentifier: 20}, layers.Dot1Q{VLANIdentifier: 10})},
		{"q20-q10", "tva", udp("q20-q10", q, layers.Dot1Q{VLANIdentifier: 20}, layers.Dot1Q{VLANIdentifier: 10})},
	}
	if sub {
		frames = append(frames, frame{"sub10", "tva.10", udp("sub10", 0)})
	}
	all := func(names ...string) string {
		var out []string
		for _, n := range names {
			if n != "sub10" || sub {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	cases := []struct {
		filter string
		want   string
	}{
		{"vlan", all("q10", "q10-pcp5", "q20", "ad20-q10", "q20-q10", "sub10")},
		{"vlan 10", all("q10", "q10-pcp5", "sub10")},
		{"vlan 20", all("q20", "ad20-q10", "q20-q10")},
		{"vlan 20 and vlan 10", all("ad20-q10", "q20-q10")},
		{"vlan and vlan", all("ad20-q10", "q20-q10")},
		{"vlan 10 and udp port 5555", all("q10", "q10-pcp5", "sub10")},
		{"vlan 20 and vlan 10 and ip dst host 10.0.0.2 and udp[8:4] = 0x74726961", all("ad20-q10", "q20-q10")},
		{"not vlan", all("untagged")},
		// As in libpcap: the failed "vlan" test moved the run-time offset
		// by 4, so "udp port" looks 4 bytes too far into the untagged frame.
		{"not vlan and udp port 5555", ""},
		{"vlan 30", ""},
	}
	for _, c := range cases {
		prog, err := CompileWithOptions(c.filter, EN10MB, 0, Options{KernelVLAN: true})
		if err != nil {
			t.Fatalf("%q: %v", c.filter, err)
		}
		got, err := captureFrames(ns, prog, func(send func(dev string, b []byte) error) error {
			for _, f := range frames {
				if err := send(f.dev, f.data); err != nil {
					return fmt.Errorf("%s: %w", f.name, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%q: %v", c.filter, err)
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("KernelVLAN %q: received [%s], want [%s]", c.filter, g, c.want)
		}
		// What the kernel did must be what the interpreter predicts from
		// the kernel's view of each frame (outer tag in metadata).
		raw, _ := xbpf.Assemble(prog)
		var predicted []string
		for _, f := range frames {
			v := kernelViews(f.data)
			view := v[len(v)-1]
			if f.dev == "tva.10" {
				view = kernelView{data: f.data, meta: skbMeta{vlanPresent: true, vlanTCI: 10, vlanTPID: 0x8100}}
			}
			if r, err := runKernel(raw, view); err != nil {
				t.Fatal(err)
			} else if r != 0 {
				predicted = append(predicted, f.name)
			}
		}
		sort.Strings(predicted)
		if p := strings.Join(predicted, " "); p != strings.Join(got, " ") {
			t.Errorf("KernelVLAN %q: kernel received [%s], interpreter predicts [%s]", c.filter, strings.Join(got, " "), p)
		}
		if c.filter == "vlan 10" {
			plain, _ := Compile(c.filter, EN10MB, 0)
			got, err := captureFrames(ns, plain, func(send func(dev string, b []byte) error) error {
				for _, f := range frames {
					if err := send(f.dev, f.data); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("without KernelVLAN, %q received [%s]: the kernel had taken the tags out of the frames", c.filter, strings.Join(got, " "))
		}
	}
}

// captureFrames opens a socket with prog on tvb, lets send write frames on
// interfaces of the namespace, and returns the markers of the frames the
// socket received, sorted.
func captureFrames(ns string, prog []xbpf.Instruction, sendAll func(send func(dev string, b []byte) error) error) ([]string, error) {
	var rx int
	tx := map[string]int{}
	err := inNetns(ns, func() error {
		var err error
		if rx, err = packetSocket("tvb", prog); err != nil {
			return err
		}
		for _, dev := range []string{"tva", "tva.10"} {
			if _, err := net.InterfaceByName(dev); err != nil {
				continue
			}
			fd, err := packetSocket(dev, nil)
			if err != nil {
				return err
			}
			// A sending socket has no use for what arrives.
			if err := attachFilter(fd, []xbpf.Instruction{xbpf.RetConstant{Val: 0}}); err != nil {
				return err
			}
			tx[dev] = fd
		}
		return nil
	})
	defer func() {
		for _, fd := range tx {
			unix.Close(fd)
		}
		if rx > 0 {
			unix.Close(rx)
		}
	}()
	if err != nil {
		return nil, err
	}
	send := func(dev string, b []byte) error {
		fd, ok := tx[dev]
		if !ok {
			return fmt.Errorf("no interface %s", dev)
		}
		_, err := unix.Write(fd, b)
		return err
	}
	if err := sendAll(send); err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval((300 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	var got []string
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(rx, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			break
		}
		if err != nil {
			return nil, err
		}
		if i := bytes.Index(buf[:n], []byte("triage-bpf-")); i >= 0 {
			got = append(got, string(buf[i+len("triage-bpf-"):n]))
		}
	}
	sort.Strings(got)
	return got, nil
}
