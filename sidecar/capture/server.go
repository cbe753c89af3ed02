package capture

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	xbpf "golang.org/x/net/bpf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/bpf"
	"github.com/triage-sh/triage/internal/capture"
	"github.com/triage-sh/triage/internal/version"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// Stop reasons, as the trailer's stop_reason gives them.
const (
	stopDuration = "duration"
	stopCount    = "count"
	stopBytes    = "bytes"
	stopClient   = "client"
	stopError    = "error"
)

// progressEvery is how often the running counters are sent.
const progressEvery = time.Second

// isbReserve is room kept at the end of a size-capped file for one
// interface statistics block.
const isbReserve = 80

type server struct {
	triagev1.UnimplementedCaptureServiceServer
	o     Options
	slots chan struct{}

	mu      sync.Mutex
	running map[string]*run
}

// run is one capture in progress.
type run struct {
	id      string
	owner   string
	iface   string
	filter  string
	started time.Time
	stop    chan struct{}
	once    sync.Once
}

func (r *run) requestStop() { r.once.Do(func() { close(r.stop) }) }

func newServer(o Options) *server {
	return &server{o: o, slots: make(chan struct{}, o.MaxConcurrent), running: map[string]*run{}}
}

func (s *server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.running {
		r.requestStop()
	}
}

// plan is a validated request with the server's limits applied.
type plan struct {
	iface      string
	filter     string
	linkType   uint32
	program    []xbpf.RawInstruction
	snapLen    int
	duration   time.Duration
	maxBytes   int64
	maxPackets int64
	notes      []string
}

// plan validates req, applies the limits and compiles the filter.
func (s *server) plan(req *triagev1.CaptureRequest) (*plan, error) {
	p := &plan{iface: req.GetInterface(), filter: strings.TrimSpace(req.GetFilter()), maxPackets: req.GetMaxPackets()}
	if p.iface == "" {
		p.iface = "any"
	}
	if req.GetSnapLength() < 0 || req.GetMaxPackets() < 0 || req.GetMaxBytes() < 0 {
		return nil, status.Error(codes.InvalidArgument, "snap_length, max_packets and max_bytes must not be negative")
	}
	if d := req.GetDuration(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "duration must be a positive duration up to %s (--capture-max-duration)", s.o.MaxDuration)
		}
	}
	p.snapLen = int(req.GetSnapLength())
	switch {
	case p.snapLen == 0:
		p.snapLen = s.o.MaxSnapLen
	case p.snapLen > s.o.MaxSnapLen:
		p.notes = append(p.notes, fmt.Sprintf("snap length lowered from %d to %d (--capture-max-snaplen)", p.snapLen, s.o.MaxSnapLen))
		p.snapLen = s.o.MaxSnapLen
	}
	p.duration = req.GetDuration().AsDuration()
	switch {
	case p.duration == 0:
		p.duration = s.o.MaxDuration
	case p.duration > s.o.MaxDuration:
		p.notes = append(p.notes, fmt.Sprintf("duration lowered from %s to %s (--capture-max-duration)", p.duration, s.o.MaxDuration))
		p.duration = s.o.MaxDuration
	}
	p.maxBytes = req.GetMaxBytes()
	switch {
	case p.maxBytes == 0:
		p.maxBytes = s.o.MaxBytes
	case p.maxBytes > s.o.MaxBytes:
		p.notes = append(p.notes, fmt.Sprintf("max bytes lowered from %d to %d (--capture-max-bytes)", p.maxBytes, s.o.MaxBytes))
		p.maxBytes = s.o.MaxBytes
	case p.maxBytes < 1024:
		return nil, status.Error(codes.InvalidArgument, "max_bytes must be at least 1024 (a pcapng file's headers alone take a few hundred)")
	}

	lt, err := capture.LinkTypeOf(p.iface)
	if err != nil {
		if errors.Is(err, capture.ErrNoInterface) {
			return nil, status.Errorf(codes.NotFound, "no interface %q in the pod's network namespace; it has: %s", p.iface, strings.Join(interfaceNames(), ", "))
		}
		return nil, status.Errorf(codes.InvalidArgument, "cannot capture on %q: %v; capture on \"any\" instead", p.iface, err)
	}
	p.linkType = lt
	blt := bpf.EN10MB
	if lt == capture.LinkTypeLinuxSLL2 {
		blt = bpf.LinuxSLL2
	}
	// The kernel strips VLAN tags before the socket filter runs and keeps
	// them as metadata: `vlan` must test that, as libpcap does live.
	prog, err := bpf.CompileWithOptions(p.filter, blt, uint32(p.snapLen), bpf.Options{KernelVLAN: blt == bpf.EN10MB})
	if err != nil {
		var se *bpf.SyntaxError
		if errors.As(err, &se) {
			return nil, status.Errorf(codes.InvalidArgument, "%v in %q (triage capture --compile FILTER checks a filter without capturing)", se, p.filter)
		}
		return nil, status.Errorf(codes.InvalidArgument, "filter %q: %v", p.filter, err)
	}
	raw, err := xbpf.Assemble(prog)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "assembling filter %q: %v", p.filter, err)
	}
	p.program = raw
	return p, nil
}

// Capture implements CaptureService.Capture.
func (s *server) Capture(req *triagev1.CaptureRequest, stream grpc.ServerStreamingServer[triagev1.CaptureResponse]) error {
	p, err := s.plan(req)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	caller := "unknown"
	if id, ok := capability.IdentityFrom(ctx); ok {
		caller = id.Name
	}
	r, err := s.start(p, caller)
	if err != nil {
		return err
	}
	defer s.finish(r)

	h, err := capture.Open(capture.Options{Interface: p.iface, Filter: p.program, SnapLen: p.snapLen, RingBytes: s.o.RingBytes})
	if err != nil {
		return openErr(p.iface, err)
	}
	c := &capturing{s: s, p: p, r: r, h: h, stream: stream, caller: caller}
	return c.run(ctx)
}

// openErr maps the engine's errors to gRPC codes with what to do.
func openErr(iface string, err error) error {
	switch {
	case errors.Is(err, capture.ErrPermission):
		return status.Error(codes.FailedPrecondition, noCapMessage)
	case errors.Is(err, capture.ErrNoInterface):
		return status.Errorf(codes.NotFound, "no interface %q in the pod's network namespace; it has: %s", iface, strings.Join(interfaceNames(), ", "))
	}
	return status.Errorf(codes.Unavailable, "opening a packet socket on %q: %v", iface, err)
}

// noCapMessage says exactly what the pod needs for capture.
const noCapMessage = "packet capture needs CAP_NET_RAW, which the triage-sidecar container does not have: " +
	"add securityContext.capabilities.add: [\"NET_RAW\"] to the triage-sidecar container " +
	"(with the injector: annotate the pod triage.dev/capture: \"true\"), then restart the pod"

// start takes a capture slot or says who holds them.
func (s *server) start(p *plan, caller string) (*run, error) {
	select {
	case s.slots <- struct{}{}:
	default:
		s.mu.Lock()
		var who []string
		for _, r := range s.running {
			who = append(who, fmt.Sprintf("%s by %s on %s since %s", r.id, r.owner, r.iface, r.started.UTC().Format(time.RFC3339)))
		}
		s.mu.Unlock()
		return nil, status.Errorf(codes.ResourceExhausted, "%d capture(s) already running (%s); wait for it, stop it with triage capture --stop ID, or raise --capture-max-concurrent",
			len(who), strings.Join(who, "; "))
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	r := &run{id: hex.EncodeToString(b[:]), owner: caller, iface: p.iface, filter: p.filter, started: time.Now(), stop: make(chan struct{})}
	s.mu.Lock()
	s.running[r.id] = r
	s.mu.Unlock()
	return r, nil
}

func (s *server) finish(r *run) {
	s.mu.Lock()
	delete(s.running, r.id)
	s.mu.Unlock()
	<-s.slots
}

// StopCapture implements CaptureService.StopCapture. Only the caller that
// started a capture may stop it.
func (s *server) StopCapture(ctx context.Context, req *triagev1.StopCaptureRequest) (*triagev1.StopCaptureResponse, error) {
	s.mu.Lock()
	r := s.running[req.GetCaptureId()]
	s.mu.Unlock()
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "no running capture %q (it may have ended already)", req.GetCaptureId())
	}
	caller := "unknown"
	if id, ok := capability.IdentityFrom(ctx); ok {
		caller = id.Name
	}
	if caller != r.owner {
		return nil, status.Errorf(codes.PermissionDenied, "capture %s was started by %s; only its owner may stop it", r.id, r.owner)
	}
	r.requestStop()
	return &triagev1.StopCaptureResponse{}, nil
}

// ListInterfaces implements CaptureService.ListInterfaces.
func (s *server) ListInterfaces(ctx context.Context, _ *triagev1.ListInterfacesRequest) (*triagev1.ListInterfacesResponse, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "listing interfaces: %v", err)
	}
	resp := &triagev1.ListInterfacesResponse{Interfaces: []*triagev1.Interface{{Name: "any", LinkType: "LINUX_SLL2", Up: true}}}
	for _, in := range ifs {
		lt := "unsupported"
		if v, err := capture.LinkTypeOf(in.Name); err == nil {
			lt = linkTypeName(v)
		}
		out := &triagev1.Interface{Name: in.Name, Index: int32(in.Index), LinkType: lt, Up: in.Flags&net.FlagUp != 0, Mtu: int32(in.MTU)}
		if addrs, err := in.Addrs(); err == nil {
			for _, a := range addrs {
				out.Addresses = append(out.Addresses, a.String())
			}
		}
		resp.Interfaces = append(resp.Interfaces, out)
	}
	ok, reason := s.available()
	resp.CaptureAvailable, resp.CaptureUnavailableReason = ok, reason
	return resp, nil
}

func linkTypeName(v uint32) string {
	switch v {
	case capture.LinkTypeEN10MB:
		return "EN10MB"
	case capture.LinkTypeLinuxSLL2:
		return "LINUX_SLL2"
	}
	return "LINKTYPE_" + strconv.FormatUint(uint64(v), 10)
}

func interfaceNames() []string {
	names := []string{"any"}
	ifs, _ := net.Interfaces()
	for _, in := range ifs {
		names = append(names, in.Name)
	}
	return names
}

// capturing is one Capture call in progress. Two goroutines share it: the
// ring reader (read), which writes the packets as pcapng blocks straight
// into chunks, and the stream writer (run), which sends the chunks. The
// chunker and the per-interface state belong to the reader while it runs
// and to the writer before it starts and after it has stopped.
type capturing struct {
	s      *server
	p      *plan
	r      *run
	h      *capture.Handle
	stream grpc.ServerStreamingServer[triagev1.CaptureResponse]
	caller string

	q      *chunkQueue
	asm    *chunker
	ng     *pcapgo.NgWriter
	idb    map[int]int // kernel ifindex -> pcapng interface id
	perIDB []uint64    // packets written per interface id

	packets     atomic.Uint64 // packets written into the file
	streamDrops atomic.Uint64 // packets refused because the queue was full
	sent        int64         // bytes sent (the writer's)
	chunkMsg    triagev1.ArtifactChunk
	chunkResp   triagev1.CaptureResponse
}

func (c *capturing) run(ctx context.Context) (err error) {
	start := time.Now()
	closed := false
	closeHandle := func() {
		if !closed {
			closed = true
			_ = c.h.Close()
		}
	}
	defer closeHandle()

	attrs := map[string]string{
		"capture_id":  c.r.id,
		"filter":      c.p.filter,
		"interface":   c.p.iface,
		"link_type":   linkTypeName(c.p.linkType),
		"snap_length": strconv.Itoa(c.p.snapLen),
		"duration":    c.p.duration.String(),
		"max_bytes":   strconv.FormatInt(c.p.maxBytes, 10),
		"max_packets": strconv.FormatInt(c.p.maxPackets, 10),
		"ring_bytes":  strconv.Itoa(c.s.o.RingBytes),
	}
	hdr := &triagev1.ArtifactHeader{
		MediaType:  "application/x-pcapng",
		FileName:   fmt.Sprintf("triage-%s-%s.pcapng", c.p.iface, start.UTC().Format("20060102T150405Z")),
		Started:    timestamppb.New(start),
		Attributes: attrs,
	}
	if err := c.stream.Send(&triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Header{Header: hdr}}); err != nil {
		return err
	}
	c.q = newChunkQueue(c.s.o.BufferBytes)
	c.asm = &chunker{q: c.q}
	c.chunkResp.Part = &triagev1.CaptureResponse_Chunk{Chunk: &c.chunkMsg}
	if err := c.begin(start); err != nil {
		return status.Errorf(codes.Internal, "writing pcapng headers: %v", err)
	}
	c.asm.flush()

	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	readerDone := make(chan struct{})
	var readErr error
	limit := "" // stopCount or stopBytes when the reader reached a limit
	go func() {
		defer close(readerDone)
		limit, readErr = c.read(rctx)
		// What was read is in the file: the writer sends it.
		c.asm.flush()
	}()
	stopReader := func() {
		rcancel()
		<-readerDone
	}

	deadline := time.NewTimer(c.p.duration)
	defer deadline.Stop()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()

	reason := ""
	for reason == "" {
		if err := c.sendQueued(); err != nil {
			stopReader()
			return err
		}
		select {
		case <-c.q.ready:
		case now := <-tick.C:
			if err := c.progress(start, now); err != nil {
				stopReader()
				return err
			}
		case <-deadline.C:
			reason = stopDuration
		case <-c.r.stop:
			reason = stopClient
		case <-ctx.Done():
			stopReader()
			return status.FromContextError(ctx.Err()).Err()
		case <-readerDone:
			if readErr != nil {
				reason = stopError
			} else {
				reason = stopClient
			}
		}
	}
	stopReader()
	// Packets already taken from the ring were captured inside the window:
	// they are in the file, unless a count or size limit ended it first.
	if limit != "" && reason != stopError {
		reason = limit
	}
	if err := c.sendQueued(); err != nil {
		return err
	}
	st, stErr := c.h.Stats()
	closeHandle()
	end := time.Now()
	streamDrops := c.streamDrops.Load()
	packets := c.packets.Load()
	if err := c.end(start, end, st, streamDrops); err != nil {
		return status.Errorf(codes.Internal, "writing pcapng statistics: %v", err)
	}
	c.asm.flush()
	if err := c.sendQueued(); err != nil {
		return err
	}
	tr := &triagev1.ArtifactTrailer{
		Bytes:      uint64(c.sent),
		Duration:   durationpb.New(end.Sub(start)),
		StopReason: reason,
		Truncated:  reason == stopBytes || reason == stopError,
		Notes:      c.p.notes,
		Counters: map[string]uint64{
			"packets":        packets,
			"bytes":          uint64(c.sent),
			"kernel_packets": st.Packets,
			"kernel_drops":   st.Drops,
			"stream_drops":   streamDrops,
		},
	}
	switch reason {
	case stopBytes:
		tr.TruncatedReason = fmt.Sprintf("the file reached max bytes %d", c.p.maxBytes)
	case stopError:
		tr.TruncatedReason = fmt.Sprintf("reading packets: %v", readErr)
	}
	if stErr != nil {
		tr.Notes = append(tr.Notes, "kernel statistics unavailable: "+stErr.Error())
	}
	if streamDrops > 0 {
		tr.Notes = append(tr.Notes, fmt.Sprintf("%d packets were dropped because the client read slower than they arrived (--capture-buffer-bytes %d)", streamDrops, c.s.o.BufferBytes))
	}
	return c.stream.Send(&triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Trailer{Trailer: tr}})
}

// sendQueued sends every queued chunk. A slow client blocks it (gRPC's
// flow control), which lets the queue fill up to its budget.
func (c *capturing) sendQueued() error {
	for {
		b, ok := c.q.pop()
		if !ok {
			return nil
		}
		// The message is reused: gRPC encodes it before Send returns and
		// does not keep it. The buffer is lent to the codec, which takes it
		// (and gRPC gives it back once written) when the client asked for
		// ContentSubtype; otherwise the proto codec copied it.
		c.chunkMsg.Data = b
		lent.Store(&c.chunkMsg, c.q)
		err := c.stream.Send(&c.chunkResp)
		if _, kept := lent.LoadAndDelete(&c.chunkMsg); kept {
			c.q.recycle(b)
		}
		c.chunkMsg.Data = nil
		if err != nil {
			return err
		}
		c.sent += int64(len(b))
	}
}

// read moves packets from the ring into the file until ctx ends, the ring
// fails, or a count or size limit is reached (its stop reason is returned).
// Whenever the ring has nothing ready, it queues the chunk it was filling,
// so a packet waits in the sidecar at most one block timeout (10 ms) after
// the kernel hands it over.
func (c *capturing) read(ctx context.Context) (limit string, err error) {
	done := ctx.Done()
	for {
		// Checked before every packet: under heavy traffic the ring may
		// never run dry.
		select {
		case <-done:
			return "", nil
		default:
		}
		data, ci, ok, err := c.h.TryReadPacket()
		if err == nil && !ok {
			c.asm.flush()
			data, ci, err = c.h.ReadPacket(ctx)
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, capture.ErrClosed) {
				return "", nil
			}
			return "", err
		}
		if limit, err := c.add(data, ci); limit != "" || err != nil {
			return limit, err
		}
	}
}

// add writes one packet into the file, or counts it as a stream drop when
// the queue is full; it returns a stop reason when a count or size limit
// is reached.
func (c *capturing) add(data []byte, ci capture.CaptureInfo) (string, error) {
	id := 0
	newIDB := false
	if c.p.linkType == capture.LinkTypeLinuxSLL2 {
		var known bool
		id, known = c.idb[ci.InterfaceIndex]
		newIDB = !known
	}
	size := epbSize(len(data))
	need := size + int64(isbReserve*(len(c.perIDB)+1))
	if newIDB {
		need += 128 + isbReserve
	}
	if c.asm.written+need > c.p.maxBytes {
		return stopBytes, nil
	}
	held := c.q.queued.Load() + int64(c.asm.pending())
	if held > 0 && held+size > int64(c.q.budget) {
		c.streamDrops.Add(1)
		return "", nil
	}
	if newIDB {
		name := strconv.Itoa(ci.InterfaceIndex)
		if in, err := net.InterfaceByIndex(ci.InterfaceIndex); err == nil {
			name = in.Name
		}
		var err error
		if id, err = c.addIDB(ci.InterfaceIndex, name); err != nil {
			return "", err
		}
	}
	c.writeEPB(id, data, ci)
	c.perIDB[id]++
	if n := c.packets.Add(1); c.p.maxPackets > 0 && int64(n) >= c.p.maxPackets {
		return stopCount, nil
	}
	return "", nil
}

// begin writes the section header and the interface blocks.
func (c *capturing) begin(start time.Time) error {
	b := version.Build()
	comment := fmt.Sprintf("triage capture by %s; filter: %q; interface: %s; started: %s",
		c.caller, c.p.filter, c.p.iface, start.UTC().Format(time.RFC3339Nano))
	host, _ := os.Hostname()
	if host != "" {
		comment += "; pod: " + host
	}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware:    runtime.GOARCH,
		OS:          runtime.GOOS,
		Application: "triage-sidecar " + b.GetVersion(),
		Comment:     comment,
	}}
	c.idb = map[int]int{}
	first := c.intf(c.p.iface)
	ng, err := pcapgo.NewNgWriterInterface(c.asm, first, opts)
	if err != nil {
		return err
	}
	c.ng = ng
	c.perIDB = []uint64{0}
	if c.p.linkType == capture.LinkTypeLinuxSLL2 {
		// "any": one block per interface, all LINUX_SLL2, so Wireshark shows
		// each packet's interface and tcpdump still sees one link type.
		// Interfaces that appear later are added when their first packet
		// arrives. Block 0 is "any" itself and carries the socket's counters.
		ifs, _ := net.Interfaces()
		for _, in := range ifs {
			if _, err := c.addIDB(in.Index, in.Name); err != nil {
				return err
			}
		}
	}
	return c.ng.Flush()
}

func (c *capturing) intf(name string) pcapgo.NgInterface {
	return pcapgo.NgInterface{
		Name:                name,
		Filter:              c.p.filter,
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkType(c.p.linkType),
		SnapLength:          uint32(c.p.snapLen),
		TimestampResolution: 9,
	}
}

func (c *capturing) addIDB(ifindex int, name string) (int, error) {
	id, err := c.ng.AddInterface(c.intf(name))
	if err != nil {
		return 0, err
	}
	c.idb[ifindex] = id
	c.perIDB = append(c.perIDB, 0)
	// pcapgo buffers: the block must be in the chunks before the first
	// packet that names it.
	return id, c.ng.Flush()
}

// epbSize is the size of an enhanced packet block without options.
func epbSize(capLen int) int64 { return 32 + int64((capLen+3)&^3) }

// writeEPB writes an enhanced packet block straight from the ring into
// the chunks: the block is trivial, and going through pcapgo's writer (its
// own buffer, then a flush into ours) would cost a copy of every packet.
// Blocks are little-endian like the rest of the file pcapgo writes, with
// timestamps in nanoseconds (the interface blocks say if_tsresol 9).
func (c *capturing) writeEPB(id int, data []byte, ci capture.CaptureInfo) {
	capLen := len(data)
	pad := (4 - capLen%4) % 4
	total := 32 + capLen + pad
	ts := uint64(ci.Timestamp.UnixNano())
	var h [28]byte
	binary.LittleEndian.PutUint32(h[0:], 6) // enhanced packet block
	binary.LittleEndian.PutUint32(h[4:], uint32(total))
	binary.LittleEndian.PutUint32(h[8:], uint32(id))
	binary.LittleEndian.PutUint32(h[12:], uint32(ts>>32))
	binary.LittleEndian.PutUint32(h[16:], uint32(ts))
	binary.LittleEndian.PutUint32(h[20:], uint32(capLen))
	binary.LittleEndian.PutUint32(h[24:], uint32(max(ci.Length, capLen)))
	var tail [8]byte // up to 3 bytes of padding, then the total length again
	binary.LittleEndian.PutUint32(tail[pad:], uint32(total))
	_, _ = c.asm.Write(h[:])
	_, _ = c.asm.Write(data)
	_, _ = c.asm.Write(tail[:pad+4])
}

// end writes one statistics block per interface.
func (c *capturing) end(start, end time.Time, st capture.Stats, streamDrops uint64) error {
	for id := range c.perIDB {
		stats := pcapgo.NgInterfaceStatistics{LastUpdate: end, StartTime: start, EndTime: end, PacketsReceived: c.perIDB[id], PacketsDropped: pcapgo.NgNoValue64}
		if id == 0 {
			// The kernel counts per socket: what its filter accepted (the
			// packets in the file plus everything dropped on the way).
			stats.PacketsReceived = st.Packets
			stats.PacketsDropped = st.Drops + streamDrops
		}
		if err := c.ng.WriteInterfaceStats(id, stats); err != nil {
			return err
		}
	}
	return c.ng.Flush()
}

// progress sends the running counters between chunks.
func (c *capturing) progress(start, now time.Time) error {
	cs := map[string]uint64{"packets": c.packets.Load(), "bytes": uint64(c.sent), "stream_drops": c.streamDrops.Load()}
	if st, err := c.h.Stats(); err == nil {
		cs["kernel_packets"], cs["kernel_drops"] = st.Packets, st.Drops
	}
	return c.stream.Send(&triagev1.CaptureResponse{Part: &triagev1.CaptureResponse_Progress{Progress: &triagev1.ArtifactProgress{
		Elapsed: durationpb.New(now.Sub(start)), Counters: cs,
	}}})
}
