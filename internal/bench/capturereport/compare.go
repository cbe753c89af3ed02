package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/internal/bench"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// traffic is one kind of load for the side-by-side comparison.
type traffic struct {
	name   string // "UDP", "bulk TCP"
	filter string // with %d for the port
	d      time.Duration
	tools  []string // capturers, in the order of the first round
	open   func() (generator, error)
}

func udpTraffic(p params) traffic {
	return traffic{name: "UDP", filter: "udp and dst port %d", d: p.udpD, tools: []string{toolTcpdump, toolTriage},
		open: func() (generator, error) { return newUDPGen(p.udpRate, p.udpPayload) }}
}

func tcpTraffic(p params) traffic {
	return traffic{name: "bulk TCP", filter: "tcp port %d", d: p.tcpD, tools: []string{toolTcpdump, toolTcpdumpPipe, toolTriage},
		open: func() (generator, error) { return newTCPGen() }}
}

// Capturers.
const (
	toolTcpdump     = "tcpdump"      // -w /dev/null: the anchor
	toolTcpdumpPipe = "tcpdump-pipe" // -w - into a pipe the report drains: a streaming anchor
	toolTriage      = "triage"       // the sidecar, through the Go client into a counting discard
)

// capRun is one capture of one generator run.
type capRun struct {
	tool      string
	captured  int64 // packets in the file
	filtered  int64 // what the socket's filter accepted: tcpdump's "received by filter", the trailer's kernel_packets
	kdrops    int64 // kernel drops (ring full)
	sdrops    int64 // triage only: stream drops (client too slow)
	fileBytes int64 // bytes of the file; -1 for tcpdump -w /dev/null
	cpu       time.Duration
	stop      string
	ring      string // triage: the header's ring_bytes
	gen       genStats
}

// comparison is one traffic kind captured by every tool over the rounds.
type comparison struct {
	name, filter string
	d            time.Duration
	runs         map[string][]capRun
}

// compare captures t with each capturer, one after the other per round
// (the order rotating, so each goes first once in len(t.tools) rounds),
// the same generator and filter.
func compare(p params, sc *sidecar, t traffic) (comparison, error) {
	c0, err := sc.dial()
	if err != nil {
		return comparison{}, err
	}
	defer c0.Close()
	g, err := t.open()
	if err != nil {
		return comparison{}, err
	}
	defer g.close()
	c := comparison{name: t.name, filter: fmt.Sprintf(t.filter, g.port()), d: t.d, runs: map[string][]capRun{}}
	for round := range p.rounds {
		n := len(t.tools)
		for i := range n {
			tool := t.tools[(i+round)%n]
			r, err := captureOnce(p, sc, c0, g, tool, c.filter, t.d)
			if err != nil {
				return c, fmt.Errorf("%s, round %d: %w", tool, round+1, err)
			}
			sent := fmt.Sprintf("%d datagrams (%.0f/s)", r.gen.sent, r.gen.rate())
			if t.name != "UDP" {
				sent = fmt.Sprintf("%s (%s/s)", mib(r.gen.sent), mib(int64(r.gen.rate())))
			}
			progress("%s round %d/%d, %-12s: sent %s, captured %d, received by filter %d, kernel drops %d, stream drops %d, CPU %s",
				t.name, round+1, p.rounds, tool, sent, r.captured, r.filtered, r.kdrops, r.sdrops, r.cpu.Round(time.Millisecond))
			c.runs[tool] = append(c.runs[tool], r)
		}
	}
	return c, nil
}

// captureOnce starts the capturer and waits until it captures (tcpdump:
// its socket bound to lo and "listening on" printed; triage: the header,
// sent once the socket is bound), runs the generator for d, waits
// p.drain, and stops the capturer: tcpdump with SIGINT (it prints its
// statistics), triage with StopCapture (the trailer follows).
func captureOnce(p params, sc *sidecar, c *client.Client, g generator, tool, filter string, d time.Duration) (capRun, error) {
	var (
		stop func() error
		wait func() (capRun, error)
		err  error
	)
	switch tool {
	case toolTcpdump, toolTcpdumpPipe:
		stop, wait, err = startTcpdump(p, filter, tool == toolTcpdumpPipe)
	case toolTriage:
		stop, wait, err = startTriage(sc, c, filter)
	}
	if err != nil {
		return capRun{}, err
	}
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	gen := g.run(ctx, p.drain)
	cancel()
	time.Sleep(p.drain)
	if err := stop(); err != nil {
		_, _ = wait()
		return capRun{}, err
	}
	r, err := wait()
	r.tool, r.gen = tool, gen
	return r, err
}

// startTcpdump runs tcpdump with the ring size of the sidecar and waits
// until it captures.
func startTcpdump(p params, filter string, pipe bool) (stop func() error, wait func() (capRun, error), err error) {
	before, err := packetSockets()
	if err != nil {
		return nil, nil, err
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return nil, nil, err
	}
	out := "/dev/null"
	if pipe {
		out = "-"
	}
	cmd := exec.Command("tcpdump", "-i", "lo", "-n", "-B", strconv.Itoa(p.ringBytes>>10), "-s", "262144", "-w", out, filter)
	var stderr syncBuffer
	var stdout discard
	cmd.Stderr = &stderr
	if pipe {
		cmd.Stdout = &stdout
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	kill := func(err error) error {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("tcpdump: %w\nstderr: %s", err, strings.TrimSpace(stderr.String()))
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := newSocketOn(before, lo.Index)
		if err != nil {
			return nil, nil, kill(err)
		}
		if ok && strings.Contains(stderr.String(), "listening on") {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, nil, kill(fmt.Errorf("exited before capturing: %v", err))
		default:
		}
		if time.Now().After(deadline) {
			return nil, nil, kill(errors.New("not capturing on lo within 15 s"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	wait = func() (capRun, error) {
		r := capRun{fileBytes: -1}
		select {
		case err := <-exited:
			if err != nil {
				return r, fmt.Errorf("tcpdump: %w\nstderr: %s", err, strings.TrimSpace(stderr.String()))
			}
		case <-time.After(15 * time.Second):
			return r, kill(errors.New("still running 15 s after SIGINT"))
		}
		if pipe {
			r.fileBytes = stdout.n.Load()
		}
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		st, err := parseTcpdumpStats(stderr.String())
		r.captured, r.filtered, r.kdrops = st.captured, st.received, st.dropped
		return r, err
	}
	return stop, wait, nil
}

// startTriage starts a capture on lo through the Go client, its pcapng
// counted and discarded, and waits for its header.
func startTriage(sc *sidecar, c *client.Client, filter string) (stop func() error, wait func() (capRun, error), err error) {
	t0, err := bench.CPUTicks(sc.pid())
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	req := &triagev1.CaptureRequest{Filter: filter, Interface: "lo", Duration: durationpb.New(10 * time.Minute)}
	hdr := make(chan *triagev1.ArtifactHeader, 1)
	type done struct {
		art *client.Artifact
		err error
	}
	finished := make(chan done, 1)
	var w discard
	go func() {
		art, err := c.Capture(ctx, req, &w, client.OnHeader(func(h *triagev1.ArtifactHeader) error { hdr <- h; return nil }))
		finished <- done{art, err}
	}()
	var h *triagev1.ArtifactHeader
	select {
	case h = <-hdr:
	case d := <-finished:
		cancel()
		return nil, nil, fmt.Errorf("triage capture: %v", d.err)
	case <-time.After(15 * time.Second):
		cancel()
		return nil, nil, errors.New("triage capture: no header within 15 s")
	}
	id := h.GetAttributes()["capture_id"]
	stop = func() error {
		err := c.StopCapture(context.Background(), id)
		if status.Code(err) == codes.NotFound {
			return nil // it ended by itself: the trailer says why
		}
		if err != nil {
			cancel()
			return fmt.Errorf("StopCapture: %w", err)
		}
		return nil
	}
	wait = func() (capRun, error) {
		defer cancel()
		r := capRun{ring: h.GetAttributes()["ring_bytes"]}
		var d done
		select {
		case d = <-finished:
		case <-time.After(15 * time.Second):
			return r, errors.New("triage capture: no trailer 15 s after StopCapture")
		}
		if d.err != nil {
			return r, fmt.Errorf("triage capture: %w", d.err)
		}
		cs := d.art.Trailer.GetCounters()
		r.captured, r.filtered, r.kdrops, r.sdrops = int64(cs["packets"]), int64(cs["kernel_packets"]), int64(cs["kernel_drops"]), int64(cs["stream_drops"])
		r.fileBytes, r.stop = w.n.Load(), d.art.Trailer.GetStopReason()
		t1, err := bench.CPUTicks(sc.pid())
		r.cpu = time.Duration(t1-t0) * bench.ClockTick
		return r, err
	}
	return stop, wait, nil
}

// tcpdumpStats is what tcpdump prints on stderr when it stops.
type tcpdumpStats struct {
	captured, received, dropped int64
	ifDropped                   int64 // "dropped by interface", -1 when not printed
}

var tcpdumpStat = regexp.MustCompile(`(?m)(\d+) packets? (captured|received by filter|dropped by kernel|dropped by interface)\s*$`)

// parseTcpdumpStats reads "N packets captured", "N packets received by
// filter", "N packets dropped by kernel" (and, when present, "N packets
// dropped by interface") out of tcpdump's stderr.
func parseTcpdumpStats(stderr string) (tcpdumpStats, error) {
	st := tcpdumpStats{ifDropped: -1}
	seen := map[string]bool{}
	for _, m := range tcpdumpStat.FindAllStringSubmatch(stderr, -1) {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return st, fmt.Errorf("tcpdump statistics: %q: %w", m[0], err)
		}
		switch m[2] {
		case "captured":
			st.captured = n
		case "received by filter":
			st.received = n
		case "dropped by kernel":
			st.dropped = n
		case "dropped by interface":
			st.ifDropped = n
		}
		seen[m[2]] = true
	}
	if !seen["captured"] || !seen["received by filter"] || !seen["dropped by kernel"] {
		return st, fmt.Errorf("tcpdump printed no statistics (captured / received by filter / dropped by kernel):\n%s", strings.TrimSpace(stderr))
	}
	return st, nil
}

// flexUint is a counter in JSON as a number or, as protojson writes
// uint64, a string.
type flexUint int64

func (f *flexUint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	*f = flexUint(n)
	return err
}

// captureJSON is the part of `triage capture -o json` the report uses.
type captureJSON struct {
	Packets     int64  `json:"packets"`
	Bytes       int64  `json:"bytes"`
	KernelDrops int64  `json:"kernel_drops"`
	StreamDrops int64  `json:"stream_drops"`
	StopReason  string `json:"stop_reason"`
	Header      struct {
		Attributes map[string]string `json:"attributes"`
	} `json:"header"`
	Trailer struct {
		Counters struct {
			KernelPackets flexUint `json:"kernel_packets"`
		} `json:"counters"`
		Duration string   `json:"duration"`
		Notes    []string `json:"notes"`
	} `json:"trailer"`
}

// parseCaptureJSON reads `triage capture -o json`.
func parseCaptureJSON(out []byte) (captureJSON, error) {
	var c captureJSON
	if err := json.Unmarshal(out, &c); err != nil {
		return c, fmt.Errorf("triage capture -o json: %w: %q", err, out)
	}
	if c.StopReason == "" {
		return c, fmt.Errorf("triage capture -o json: no stop_reason in %q", out)
	}
	return c, nil
}

// packetSockets returns the inodes of the packet sockets open now.
func packetSockets() (map[string]bool, error) {
	rows, err := readPacketSockets()
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, r := range rows {
		m[r.inode] = true
	}
	return m, nil
}

// newSocketOn reports whether a packet socket not in before is bound to
// ifindex and running.
func newSocketOn(before map[string]bool, ifindex int) (bool, error) {
	rows, err := readPacketSockets()
	if err != nil {
		return false, err
	}
	for _, r := range rows {
		if !before[r.inode] && r.ifindex == ifindex && r.running {
			return true, nil
		}
	}
	return false, nil
}

type packetSocket struct {
	inode   string
	ifindex int
	running bool
}

func readPacketSockets() ([]packetSocket, error) {
	b, err := os.ReadFile("/proc/net/packet")
	if err != nil {
		return nil, err
	}
	return parsePacketSockets(b)
}

// parsePacketSockets reads /proc/net/packet: "sk RefCnt Type Proto Iface
// R Rmem User Inode".
func parsePacketSockets(b []byte) ([]packetSocket, error) {
	var rows []packetSocket
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if first {
			first = false
			if len(f) < 9 || f[4] != "Iface" || f[5] != "R" || f[8] != "Inode" {
				return nil, fmt.Errorf("/proc/net/packet: unexpected header %q", sc.Text())
			}
			continue
		}
		if len(f) < 9 {
			continue
		}
		idx, err := strconv.Atoi(f[4])
		if err != nil {
			return nil, fmt.Errorf("/proc/net/packet: %q: %w", sc.Text(), err)
		}
		rows = append(rows, packetSocket{inode: f[8], ifindex: idx, running: f[5] == "1"})
	}
	return rows, sc.Err()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
