//go:build linux

package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Link types (pcap LINKTYPE_* values) returned by LinkTypeOf and
// Handle.LinkType.
const (
	LinkTypeEN10MB    uint32 = 1   // Ethernet; also loopback, as libpcap does
	LinkTypeLinuxSLL2 uint32 = 276 // Linux cooked capture v2, used for "any"
)

// Limits and defaults of Options.
const (
	DefaultSnapLen   = 262144  // Options.SnapLen 0 means this
	MaxSnapLen       = 262144  // larger snap lengths are lowered to this (libpcap's MAXIMUM_SNAPLEN)
	DefaultRingBytes = 8 << 20 // default and minimum ring size
	MaxRingBytes     = 1 << 30 // larger rings are lowered to this
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNoInterface: the interface does not exist in the caller's network
	// namespace (or vanished while the handle was being opened).
	ErrNoInterface = errors.New("no such network interface")
	// ErrPermission: socket(AF_PACKET) failed with EPERM or EACCES: the
	// process lacks CAP_NET_RAW in its network namespace.
	ErrPermission = errors.New("opening a packet socket needs CAP_NET_RAW")
	// ErrClosed: the handle was closed.
	ErrClosed = errors.New("capture handle closed")
)

// Direction selects which packets of the interface are captured.
type Direction int

const (
	// DirectionInOut captures packets received and sent (the default). On
	// loopback, where every packet sent is also received, each packet is
	// captured once (as received), as libpcap does.
	DirectionInOut Direction = iota
	// DirectionIn captures only packets received (PACKET_IGNORE_OUTGOING).
	DirectionIn
	// DirectionOut captures only packets sent (pkttype PACKET_OUTGOING,
	// tested by a filter prefix in the kernel).
	DirectionOut
)

func (d Direction) String() string {
	switch d {
	case DirectionInOut:
		return "inout"
	case DirectionIn:
		return "in"
	case DirectionOut:
		return "out"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Options configures Open.
type Options struct {
	// Interface is an interface name in the caller's network namespace, or
	// "any" for all of them (LINKTYPE_LINUX_SLL2).
	Interface string
	// Filter is a classic BPF program compiled for LinkTypeOf(Interface),
	// as the 20-byte LINUX_SLL2 header for "any". Its return value is the
	// number of bytes to keep (0 rejects). nil accepts every packet.
	Filter []bpf.RawInstruction
	// SnapLen is the number of bytes kept per packet (the filter's return
	// value also caps it, as in the kernel). 0 means DefaultSnapLen.
	SnapLen int
	// RingBytes is the size of the kernel ring; 0 and anything below
	// DefaultRingBytes mean DefaultRingBytes.
	RingBytes int
	// Direction selects received and/or sent packets.
	Direction Direction
	// Promiscuous puts a named interface in promiscuous mode for the
	// handle's lifetime (a membership of the socket, undone by the kernel
	// when it closes). Ignored for "any", as by libpcap.
	Promiscuous bool

	// ring overrides the ring geometry (tests only).
	ring *ringGeometry
}

// CaptureInfo describes one packet.
type CaptureInfo struct {
	Timestamp     time.Time
	CaptureLength int // len(data): at most SnapLen
	Length        int // length on the wire (with the re-inserted VLAN tag, or the SLL2 header for "any")
	// InterfaceIndex is the kernel's index of the interface the packet was
	// seen on (the same on every packet unless Interface is "any").
	InterfaceIndex int
}

// Stats are the handle's counters, cumulative since Open.
type Stats struct {
	// Packets is the number of packets the filter accepted, including the
	// ones dropped because the ring was full (the kernel's tp_packets, as
	// libpcap's ps_recv), minus UserFiltered.
	Packets uint64
	// Drops is the number of accepted packets the kernel could not store
	// because the ring was full.
	Drops uint64
	// FreezeQueueCount is how many times the ring was full (tp_freeze_q_cnt).
	FreezeQueueCount uint64
	// Delivered is the number of packets ReadPacket returned (brought up to
	// date whenever the reader waits or finishes a block, and on Close).
	Delivered uint64
	// UserFiltered is the number of packets rejected by the part of the
	// filter that had to run in user space (only for "any" filters that
	// cannot be rewritten for the kernel; see UserSpaceFilter).
	UserFiltered uint64
}

// Handle is an open capture. ReadPacket is meant for one goroutine at a time
// (concurrent calls are serialised); Stats and Close may be called from any
// goroutine at any time.
type Handle struct {
	iface    string
	linkType uint32
	cooked   bool // SOCK_DGRAM, SLL2 header built in user space
	snap     int
	ifindex  int // 0 for "any"

	// readMu is held by ReadPacket for its whole duration (including the
	// wait in poll) and by Close while it unmaps the ring, so the ring is
	// never unmapped while a reader is inside it.
	readMu    sync.Mutex
	closed    atomic.Bool
	closeOnce sync.Once

	// Reader state, guarded by readMu.
	ring      []byte
	blockSize int
	blockNr   int
	cur       int  // block being read
	held      bool // cur is owned by user space and being read
	left      int  // packets of cur not yet read
	off       int  // ring offset of the next packet's tpacket3_hdr
	scratch   []byte
	userVM    *bpf.VM // the filter, when it must run in user space

	// Counted by the reader without atomics (under readMu) and published
	// to Stats before it waits, when it gives a block back, and on Close.
	nDelivered, nUserFiltered uint64
	delivered, userFiltered   atomic.Uint64

	// mu guards the descriptors' lifetime (Close sets them to -1 under it)
	// and the accumulated kernel statistics.
	mu     sync.Mutex
	fd     int // AF_PACKET socket
	efd    int // eventfd that wakes the reader (cancellation, Close)
	kstats Stats
	geo    ringGeometry
	notes  []string
}

// LinkType returns the handle's LINKTYPE_* value.
func (h *Handle) LinkType() uint32 { return h.linkType }

// Interface returns the interface name the handle was opened on.
func (h *Handle) Interface() string { return h.iface }

// SnapLen returns the effective snap length.
func (h *Handle) SnapLen() int { return h.snap }

// RingBytes returns the size of the kernel ring actually allocated.
func (h *Handle) RingBytes() int { return h.geo.blockSize * h.geo.blockNr }

// UserSpaceFilter reports whether (part of) the filter runs in user space:
// true only for "any" filters that load link-layer header fields the kernel
// cannot provide (see rewriteSLL2). The kernel then keeps every packet of
// the interface(s) and the filter is run on it by golang.org/x/net/bpf's VM,
// as libpcap falls back.
func (h *Handle) UserSpaceFilter() bool { return h.userVM != nil }

// Notes returns remarks on how the handle was set up (e.g. fallbacks taken).
func (h *Handle) Notes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.notes...)
}

// Open opens a TPACKET_V3 capture on o.Interface with o.Filter attached in
// the kernel before the socket is bound, so no packet the filter rejects
// ever reaches the ring.
func Open(o Options) (_ *Handle, err error) {
	if o.Interface == "" {
		return nil, errors.New("capture: no interface given (a name, or \"any\")")
	}
	snap := o.SnapLen
	switch {
	case snap < 0:
		return nil, fmt.Errorf("capture: negative snap length %d", snap)
	case snap == 0:
		snap = DefaultSnapLen
	case snap > MaxSnapLen:
		snap = MaxSnapLen
	}
	if o.Direction < DirectionInOut || o.Direction > DirectionOut {
		return nil, fmt.Errorf("capture: invalid direction %d", int(o.Direction))
	}
	h := &Handle{iface: o.Interface, snap: snap, fd: -1, efd: -1}
	anyIface := o.Interface == "any"
	hatype := uint16(0)
	if anyIface {
		h.linkType, h.cooked = LinkTypeLinuxSLL2, true
	} else {
		// Resolve the interface first (no privilege needed), so an unknown
		// name is ErrNoInterface even without CAP_NET_RAW.
		ht, err := arphrdOf(o.Interface)
		if err != nil {
			return nil, err
		}
		lt, err := linkTypeFor(o.Interface, ht)
		if err != nil {
			return nil, err
		}
		h.linkType, hatype = lt, ht
	}

	sockType := unix.SOCK_RAW
	if h.cooked {
		sockType = unix.SOCK_DGRAM
	}
	// Protocol 0: the socket receives nothing until bind, which comes last,
	// after the filter and the ring are in place.
	fd, err := packetSocket(sockType | unix.SOCK_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("capture: socket(AF_PACKET): %v: %w", err, ErrPermission)
		}
		return nil, fmt.Errorf("capture: socket(AF_PACKET): %w", err)
	}
	h.fd = fd
	defer func() {
		if err != nil {
			h.release()
		}
	}()

	if !anyIface {
		if h.ifindex, err = ifindexOf(fd, o.Interface); err != nil {
			return nil, err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("capture: PACKET_VERSION TPACKET_V3: %w", err)
	}

	// Direction, and loopback's duplicates: every packet sent on lo is seen
	// twice by packet sockets, once outgoing and once incoming.
	var prefix []bpf.Instruction
	ignoreOutgoing := o.Direction == DirectionIn || (hatype == unix.ARPHRD_LOOPBACK && o.Direction == DirectionInOut)
	switch {
	case ignoreOutgoing:
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			// Kernels before 4.20: the same in the filter.
			prefix = dropOutgoingPrefix()
			h.notes = append(h.notes, fmt.Sprintf("PACKET_IGNORE_OUTGOING unavailable (%v): outgoing packets dropped by the filter", err))
		}
	case o.Direction == DirectionOut:
		prefix = onlyOutgoingPrefix()
	case anyIface:
		// Drop outgoing packets only when they are on a loopback
		// interface: their incoming copy is captured.
		if lo, err := ifindexOf(fd, "lo"); err == nil {
			prefix = anyLoopbackPrefix(uint32(lo))
		}
	}

	prog, err := buildProgram(o.Filter, h.cooked, snap, prefix)
	if err != nil {
		return nil, err
	}
	h.userVM = prog.user
	if prog.user != nil {
		h.notes = append(h.notes, "filter loads SLL2 header fields the kernel cannot provide: run in user space")
	}
	if err := attachFilter(fd, prog.kernel); err != nil {
		return nil, err
	}
	// Nothing may replace the filter afterwards. Cheap; kernels without it
	// (before 3.9) just do not lock.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_LOCK_FILTER, 1)

	if o.Promiscuous && !anyIface {
		mreq := unix.PacketMreq{Ifindex: int32(h.ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return nil, fmt.Errorf("capture: promiscuous mode on %q: %w", o.Interface, err)
		}
	}

	geo := o.ring
	if geo == nil {
		g := defaultGeometry(prog.kernelSnap, o.RingBytes)
		geo = &g
	}
	h.geo = *geo
	req := unix.TpacketReq3{
		Block_size:     uint32(geo.blockSize),
		Block_nr:       uint32(geo.blockNr),
		Frame_size:     uint32(geo.blockSize),
		Frame_nr:       uint32(geo.blockNr),
		Retire_blk_tov: uint32(geo.timeout / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("capture: PACKET_RX_RING (%d blocks of %d bytes): %w", geo.blockNr, geo.blockSize, err)
	}
	ring, err := unix.Mmap(fd, 0, geo.blockSize*geo.blockNr, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("capture: mmap of the %d-byte ring: %w", geo.blockSize*geo.blockNr, err)
	}
	h.ring, h.blockSize, h.blockNr = ring, geo.blockSize, geo.blockNr
	if h.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("capture: eventfd: %w", err)
	}

	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: h.ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("capture: interface %q: %w", o.Interface, ErrNoInterface)
		}
		return nil, fmt.Errorf("capture: bind to %q: %w", o.Interface, err)
	}
	// bind reports a down interface through the socket's error.
	if soErr, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); soErr != 0 {
		return nil, fmt.Errorf("capture: interface %q: %w", o.Interface, sockErr(unix.Errno(soErr)))
	}
	return h, nil
}

func sockErr(e unix.Errno) error {
	switch e {
	case unix.ENETDOWN:
		return fmt.Errorf("the interface is down (%w)", e)
	case unix.ENODEV, unix.ENXIO:
		return fmt.Errorf("the interface was removed (%v): %w", e, ErrNoInterface)
	}
	return e
}

// release frees whatever Open set up (on failure, and from Close).
func (h *Handle) release() {
	h.mu.Lock()
	if h.fd >= 0 {
		_ = unix.Close(h.fd)
		h.fd = -1
	}
	if h.efd >= 0 {
		_ = unix.Close(h.efd)
		h.efd = -1
	}
	h.mu.Unlock()
	if h.ring != nil {
		_ = unix.Munmap(h.ring)
		h.ring = nil
	}
}

// Close stops the capture and frees the ring. It wakes a ReadPacket blocked
// in another goroutine (which returns ErrClosed) and waits for it to leave
// the ring before unmapping it; data returned by ReadPacket is invalid
// afterwards. Stats still returns the final counters. Close is idempotent.
func (h *Handle) Close() error {
	// Concurrent callers wait in Do until the first Close has finished.
	h.closeOnce.Do(h.close)
	return nil
}

func (h *Handle) close() {
	h.closed.Store(true)
	h.wake()
	h.readMu.Lock()
	defer h.readMu.Unlock()
	h.publish()
	h.mu.Lock()
	if h.fd >= 0 {
		_ = h.readKernelStatsLocked()
	}
	h.mu.Unlock()
	h.release()
}

// wake makes a poll in ReadPacket return.
func (h *Handle) wake() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.efd >= 0 {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(h.efd, one[:])
	}
}

// Stats returns the counters since Open. Reading the kernel's
// PACKET_STATISTICS resets them, so they are accumulated here. After Close
// it returns the final counters.
func (h *Handle) Stats() (Stats, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var err error
	if h.fd >= 0 {
		err = h.readKernelStatsLocked()
	}
	s := h.kstats
	s.Delivered = h.delivered.Load()
	s.UserFiltered = h.userFiltered.Load()
	if s.Packets >= s.UserFiltered {
		s.Packets -= s.UserFiltered
	} else {
		s.Packets = 0
	}
	return s, err
}

func (h *Handle) readKernelStatsLocked() error {
	st, err := unix.GetsockoptTpacketStatsV3(h.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return fmt.Errorf("capture: PACKET_STATISTICS: %w", err)
	}
	// tp_packets already includes tp_drops (net/packet/af_packet.c).
	h.kstats.Packets += uint64(st.Packets)
	h.kstats.Drops += uint64(st.Drops)
	h.kstats.FreezeQueueCount += uint64(st.Freeze_q_cnt)
	return nil
}

// ReadPacket blocks for the next packet. data points into the ring (or a
// buffer of the handle) and is valid until the next ReadPacket or Close.
// Cancelling ctx, or Close from another goroutine, wakes it at once
// (an eventfd in its poll set); it then returns ctx.Err() or ErrClosed.
// A cancelled ctx is noticed even while packets keep arriving.
func (h *Handle) ReadPacket(ctx context.Context) (data []byte, ci CaptureInfo, err error) {
	h.readMu.Lock()
	defer h.readMu.Unlock()
	done := ctx.Done()
	for {
		if h.closed.Load() {
			return nil, ci, ErrClosed
		}
		select {
		case <-done:
			return nil, ci, ctx.Err()
		default:
		}
		data, ok, err := h.tryNext(&ci)
		if err != nil || ok {
			return data, ci, err
		}
		if err := h.wait(ctx); err != nil {
			return nil, ci, err
		}
	}
}

// TryReadPacket is ReadPacket without the wait: when no packet is ready in
// the ring it returns ok false at once (and no error). A reader that has
// work to do between bursts (e.g. flushing what it assembled) calls it
// until ok is false, then blocks in ReadPacket.
func (h *Handle) TryReadPacket() (data []byte, ci CaptureInfo, ok bool, err error) {
	h.readMu.Lock()
	defer h.readMu.Unlock()
	if h.closed.Load() {
		return nil, ci, false, ErrClosed
	}
	data, ok, err = h.tryNext(&ci)
	if !ok && err == nil {
		h.publish()
	}
	return data, ci, ok, err
}

// tryNext returns the next packet if one is ready, moving on to the next
// block as needed; ok is false when the ring has nothing ready.
func (h *Handle) tryNext(ci *CaptureInfo) (data []byte, ok bool, err error) {
	for {
		if h.left > 0 {
			data, ok, err := h.next(ci)
			if err != nil || ok {
				return data, ok, err
			}
			continue
		}
		if h.held {
			h.releaseBlock()
		}
		if !h.enterBlock() {
			return nil, false, nil
		}
	}
}

// pollTimeout bounds each poll, as a safety net only: wake-ups come from
// the socket (a block was retired) or the eventfd.
const pollTimeout = 250 // ms

// publish makes the reader's counters visible to Stats.
func (h *Handle) publish() {
	h.delivered.Store(h.nDelivered)
	h.userFiltered.Store(h.nUserFiltered)
}

// wait blocks until the socket or the eventfd is readable.
func (h *Handle) wait(ctx context.Context) error {
	h.publish()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, h.wake)
		defer stop()
	}
	fds := [2]unix.PollFd{
		{Fd: int32(h.fd), Events: unix.POLLIN},
		{Fd: int32(h.efd), Events: unix.POLLIN},
	}
	_, err := unix.Poll(fds[:], pollTimeout)
	if err != nil {
		if errors.Is(err, unix.EINTR) {
			return nil
		}
		return fmt.Errorf("capture: poll: %w", err)
	}
	if fds[1].Revents&unix.POLLIN != 0 {
		var buf [8]byte
		_, _ = unix.Read(h.efd, buf[:])
	}
	if fds[0].Revents&unix.POLLERR != 0 {
		soErr, err := unix.GetsockoptInt(h.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return fmt.Errorf("capture: socket error (SO_ERROR: %v)", err)
		}
		if soErr != 0 {
			e := unix.Errno(soErr)
			if e == unix.ENETDOWN && h.ifindex > 0 && h.ifindexGone() {
				e = unix.ENODEV
			}
			return fmt.Errorf("capture: %s: %w", h.iface, sockErr(e))
		}
	}
	if fds[0].Revents&unix.POLLNVAL != 0 {
		return fmt.Errorf("capture: poll: socket not open")
	}
	return nil
}

// ifindexGone reports whether the handle's interface has disappeared (in
// the socket's network namespace, whatever the calling thread's). Deleting
// an interface first takes it down, which is when the socket is told
// (ENETDOWN): give the unregistration up to 100 ms to complete.
func (h *Handle) ifindexGone() bool {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return false
	}
	for range 10 {
		ifr.SetUint32(uint32(h.ifindex))
		if errors.Is(unix.IoctlIfreq(h.fd, unix.SIOCGIFNAME, ifr), unix.ENODEV) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// Layout of the ring (include/uapi/linux/if_packet.h).
const (
	// struct tpacket_block_desc: version, offset_to_priv, then
	// tpacket_hdr_v1: block_status, num_pkts, offset_to_first_pkt, ...
	blkStatusOff   = 8
	blkNumPktsOff  = 12
	blkFirstPktOff = 16
	blkHeaderLen   = 48

	// struct tpacket3_hdr
	pktNextOff    = 0
	pktSecOff     = 4
	pktNsecOff    = 8
	pktSnaplenOff = 12
	pktLenOff     = 16
	pktStatusOff  = 20
	pktMacOff     = 24
	pktVlanTCIOff = 32
	pktVlanTPID   = 36
	// struct sockaddr_ll follows at TPACKET_ALIGN(sizeof(tpacket3_hdr)).
	sllOff      = 48
	sllProtoOff = sllOff + 2
	sllIfindex  = sllOff + 4
	sllHatype   = sllOff + 8
	sllPkttype  = sllOff + 10
	sllHalen    = sllOff + 11
	sllAddr     = sllOff + 12
	sllEnd      = sllOff + 20

	sll2HeaderLen = 20
	vlanTagLen    = 4
)

func (h *Handle) statusWord(block int) *uint32 {
	return (*uint32)(unsafe.Pointer(&h.ring[block*h.blockSize+blkStatusOff]))
}

// enterBlock starts reading block cur if user space owns it.
func (h *Handle) enterBlock() bool {
	if atomic.LoadUint32(h.statusWord(h.cur))&unix.TP_STATUS_USER == 0 {
		return false
	}
	b := h.cur * h.blockSize
	h.held = true
	h.left = int(binary.NativeEndian.Uint32(h.ring[b+blkNumPktsOff:]))
	h.off = b + int(binary.NativeEndian.Uint32(h.ring[b+blkFirstPktOff:]))
	return true
}

// releaseBlock gives block cur back to the kernel and moves to the next.
func (h *Handle) releaseBlock() {
	h.publish()
	atomic.StoreUint32(h.statusWord(h.cur), unix.TP_STATUS_KERNEL)
	h.held, h.left = false, 0
	h.cur++
	if h.cur == h.blockNr {
		h.cur = 0
	}
}

var errCorrupt = errors.New("capture: malformed packet in the ring")

// next decodes the packet at h.off. ok is false when the user-space filter
// rejected it.
func (h *Handle) next(ci *CaptureInfo) (data []byte, ok bool, err error) {
	r := h.ring
	base := h.off
	blockEnd := h.cur*h.blockSize + h.blockSize
	if base+sllEnd > blockEnd {
		h.left = 0
		return nil, false, errCorrupt
	}
	nextOff := int(binary.NativeEndian.Uint32(r[base+pktNextOff:]))
	snaplen := int(binary.NativeEndian.Uint32(r[base+pktSnaplenOff:]))
	wireLen := int(binary.NativeEndian.Uint32(r[base+pktLenOff:]))
	status := binary.NativeEndian.Uint32(r[base+pktStatusOff:])
	mac := int(binary.NativeEndian.Uint16(r[base+pktMacOff:]))
	h.left--
	if h.left > 0 {
		if nextOff <= 0 {
			h.left = 0
			return nil, false, errCorrupt
		}
		h.off = base + nextOff
	}
	start, end := base+mac, base+mac+snaplen
	if mac < sllEnd || end > blockEnd {
		return nil, false, errCorrupt
	}
	ci.Timestamp = time.Unix(int64(binary.NativeEndian.Uint32(r[base+pktSecOff:])), int64(binary.NativeEndian.Uint32(r[base+pktNsecOff:])))
	ci.InterfaceIndex = int(int32(binary.NativeEndian.Uint32(r[base+sllIfindex:])))
	ci.Length = wireLen

	if h.cooked {
		// LINUX_SLL2 header from sockaddr_ll, as libpcap builds it.
		var hdr []byte
		if start-sll2HeaderLen >= base+sllEnd {
			data = r[start-sll2HeaderLen : end]
		} else {
			data = h.scratchBuf(sll2HeaderLen + snaplen)
			copy(data[sll2HeaderLen:], r[start:end])
		}
		hdr = data[:sll2HeaderLen]
		halen := r[base+sllHalen]
		// Read every field before writing: hdr may not overlap sockaddr_ll
		// (checked above), but keep the order obvious.
		proto0, proto1 := r[base+sllProtoOff], r[base+sllProtoOff+1]
		hatype := binary.NativeEndian.Uint16(r[base+sllHatype:])
		pkttype := r[base+sllPkttype]
		var addr [8]byte
		copy(addr[:min(int(halen), 8)], r[base+sllAddr:base+sllAddr+8])
		hdr[0], hdr[1] = proto0, proto1 // already in network order
		hdr[2], hdr[3] = 0, 0
		binary.BigEndian.PutUint32(hdr[4:], uint32(ci.InterfaceIndex))
		binary.BigEndian.PutUint16(hdr[8:], hatype)
		hdr[10] = pkttype
		hdr[11] = halen
		copy(hdr[12:20], addr[:])
		ci.Length += sll2HeaderLen
	} else {
		data = r[start:end]
		tci := binary.NativeEndian.Uint32(r[base+pktVlanTCIOff:])
		if (status&unix.TP_STATUS_VLAN_VALID != 0 || tci != 0) && snaplen >= 12 {
			// The kernel moved the outer VLAN tag into metadata: put it
			// back after the MAC addresses, as libpcap does.
			tpid := uint16(0x8100)
			if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				tpid = binary.NativeEndian.Uint16(r[base+pktVlanTPID:])
			}
			if start-vlanTagLen >= base+sllEnd {
				data = r[start-vlanTagLen : end]
				copy(data[:12], r[start:start+12])
			} else {
				buf := h.scratchBuf(snaplen + vlanTagLen)
				copy(buf[:12], r[start:start+12])
				copy(buf[16:], r[start+12:end])
				data = buf
			}
			binary.BigEndian.PutUint16(data[12:], tpid)
			binary.BigEndian.PutUint16(data[14:], uint16(tci))
			ci.Length += vlanTagLen
		}
	}

	if h.userVM != nil {
		n, err := h.userVM.Run(data)
		if err != nil || n == 0 {
			h.nUserFiltered++
			return nil, false, nil
		}
		if n < len(data) {
			data = data[:n]
		}
	}
	if len(data) > h.snap {
		data = data[:h.snap]
	}
	ci.CaptureLength = len(data)
	if ci.Length < ci.CaptureLength {
		ci.Length = ci.CaptureLength
	}
	h.nDelivered++
	return data, true, nil
}

func (h *Handle) scratchBuf(n int) []byte {
	if cap(h.scratch) < n {
		h.scratch = make([]byte, n, max(n, 2048))
	}
	return h.scratch[:n]
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
