//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (AF_PACKET sockets and network namespaces)")
	}
}

func needIP(t testing.TB) {
	t.Helper()
	needRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: the ip command (iproute2) is not installed")
	}
}

// nsWorker runs functions on one locked OS thread inside a network
// namespace, so the sockets they create belong to it. The thread is
// discarded when the worker stops (its goroutine exits still locked).
type nsWorker struct {
	ch   chan func()
	done chan struct{}
}

// newNS starts a worker in a fresh network namespace (unshare) with lo up:
// a loopback of its own, free of other processes' traffic.
func newNS(t testing.TB) *nsWorker {
	t.Helper()
	needRoot(t)
	return startWorker(t, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
		}
		return setUp("lo")
	})
}

// enterNS starts a worker in the named namespace (ip netns).
func enterNS(t testing.TB, name string) *nsWorker {
	t.Helper()
	return startWorker(t, func() error {
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Setns(fd, unix.CLONE_NEWNET)
	})
}

func startWorker(t testing.TB, setup func() error) *nsWorker {
	t.Helper()
	w := &nsWorker{ch: make(chan func()), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		defer close(w.done)
		runtime.LockOSThread()
		// No UnlockOSThread: the thread, now in another namespace, exits
		// with this goroutine.
		if err := setup(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		for f := range w.ch {
			f()
		}
	}()
	if err := <-errc; err != nil {
		t.Fatalf("entering a network namespace: %v", err)
	}
	t.Cleanup(func() { close(w.ch); <-w.done })
	return w
}

// do runs f in the namespace.
func (w *nsWorker) do(f func()) {
	done := make(chan struct{})
	w.ch <- func() { defer close(done); f() }
	<-done
}

func (w *nsWorker) open(t testing.TB, o Options) *Handle {
	t.Helper()
	var h *Handle
	var err error
	w.do(func() { h, err = Open(o) })
	if err != nil {
		t.Fatalf("Open(%+v): %v", o, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func (w *nsWorker) ifindex(t testing.TB, name string) int {
	t.Helper()
	var in *net.Interface
	var err error
	w.do(func() { in, err = net.InterfaceByName(name) })
	if err != nil {
		t.Fatal(err)
	}
	return in.Index
}

// udpPair is a listener and a connected sender.
type udpPair struct {
	srv, cli *net.UDPConn
	port     int
}

func (w *nsWorker) udp(t testing.TB, listen, dial string) *udpPair {
	t.Helper()
	var p udpPair
	var err error
	w.do(func() {
		var la *net.UDPAddr
		if la, err = net.ResolveUDPAddr("udp4", listen); err != nil {
			return
		}
		if p.srv, err = net.ListenUDP("udp4", la); err != nil {
			return
		}
		p.port = p.srv.LocalAddr().(*net.UDPAddr).Port
		p.cli, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(dial), Port: p.port})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.srv.Close(); p.cli.Close() })
	return &p
}

func setUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

var seq atomic.Int32

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// vethPair is two network namespaces joined by a veth pair: A (10.77.0.1,
// interface VA) and B (10.77.0.2, interface VB). Traffic stays between them.
type vethPair struct {
	nsA, nsB string
	va, vb   string
	a, b     *nsWorker
}

const ipA, ipB = "10.77.0.1", "10.77.0.2"

func newVeth(t testing.TB) *vethPair {
	t.Helper()
	needIP(t)
	id := fmt.Sprintf("%d%02d", os.Getpid()%100000, seq.Add(1)%100)
	p := &vethPair{nsA: "tcapA" + id, nsB: "tcapB" + id, va: "tca" + id, vb: "tcb" + id}
	for _, ns := range []string{p.nsA, p.nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		// No IPv6 (router solicitations, DAD): only the test's traffic.
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", p.va, "netns", p.nsA, "type", "veth", "peer", "name", p.vb, "netns", p.nsB)
	run(t, "ip", "-n", p.nsA, "addr", "add", ipA+"/24", "dev", p.va)
	run(t, "ip", "-n", p.nsB, "addr", "add", ipB+"/24", "dev", p.vb)
	run(t, "ip", "-n", p.nsA, "link", "set", p.va, "up")
	run(t, "ip", "-n", p.nsB, "link", "set", p.vb, "up")
	p.a, p.b = enterNS(t, p.nsA), enterNS(t, p.nsB)
	// Wait for the carrier so the first packets are not lost.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var up bool
		p.a.do(func() {
			in, err := net.InterfaceByName(p.va)
			up = err == nil && in.Flags&net.FlagRunning != 0
		})
		if up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never came up", p.va)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// pkt is a packet read, copied.
type pkt struct {
	data []byte
	ci   CaptureInfo
}

// collect reads packets until want are kept (keep may be nil: keep all) and
// then for linger more, or until timeout; it returns what keep accepted.
func collect(t testing.TB, h *Handle, want int, keep func([]byte) bool, timeout, linger time.Duration) []pkt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []pkt
	for {
		data, ci, err := h.ReadPacket(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return out
			}
			t.Fatalf("ReadPacket: %v", err)
		}
		if keep != nil && !keep(data) {
			continue
		}
		if ci.CaptureLength != len(data) {
			t.Fatalf("CaptureLength %d, len(data) %d", ci.CaptureLength, len(data))
		}
		out = append(out, pkt{append([]byte(nil), data...), ci})
		if len(out) == want {
			cancel()
			ctx, cancel = context.WithTimeout(context.Background(), linger)
			defer cancel()
		}
	}
}

// decoded is what the tests check of a UDP packet.
type decoded struct {
	sll2             *layers.LinuxSLL2
	eth              *layers.Ethernet
	dot1q            *layers.Dot1Q
	srcPort, dstPort int
	payload          []byte
}

func decode(t testing.TB, data []byte, lt uint32) decoded {
	t.Helper()
	first := layers.LayerTypeEthernet
	if lt == LinkTypeLinuxSLL2 {
		first = layers.LayerTypeLinuxSLL2
	}
	p := gopacket.NewPacket(data, first, gopacket.Default)
	var d decoded
	if l, ok := p.Layer(layers.LayerTypeLinuxSLL2).(*layers.LinuxSLL2); ok {
		d.sll2 = l
	}
	if l, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); ok {
		d.eth = l
	}
	if l, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
		d.dot1q = l
	}
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		d.srcPort, d.dstPort, d.payload = int(u.SrcPort), int(u.DstPort), u.Payload
	}
	return d
}

// udpPort returns a predicate for UDP packets to or from port.
func udpPort(t testing.TB, lt uint32, port int) func([]byte) bool {
	return func(b []byte) bool {
		d := decode(t, b, lt)
		return d.srcPort == port || d.dstPort == port
	}
}

// udpDstFilter is "udp dst port P" for IPv4 with the link-layer header of
// linkLen bytes and the EtherType at typeOff (14/12 for EN10MB, 20/0 for
// LINUX_SLL2), returning ret for accepted packets: as tcpdump -d prints it.
func udpDstFilter(t testing.TB, linkLen, typeOff uint32, port uint16, ret uint32) []bpf.RawInstruction {
	t.Helper()
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: typeOff, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 8},
		bpf.LoadAbsolute{Off: linkLen + 9, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipFalse: 6},
		bpf.LoadAbsolute{Off: linkLen + 6, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 4},
		bpf.LoadMemShift{Off: linkLen},
		bpf.LoadIndirect{Off: linkLen + 2, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port), SkipFalse: 1},
		bpf.RetConstant{Val: ret},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

func ethUDPDst(t testing.TB, port int) []bpf.RawInstruction {
	return udpDstFilter(t, 14, 12, uint16(port), 262144)
}

func payloadN(i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(i + j)
	}
	copy(b, fmt.Sprintf("pkt-%05d", i))
	return b
}
