package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	xbpf "golang.org/x/net/bpf"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/auth"
	"github.com/triage-sh/triage/internal/bpf"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// stopGrace is how long Ctrl-C waits for the server to finish the file
// (statistics blocks, trailer) before the stream is cut.
const stopGrace = 3 * time.Second

// captureFlags are the flags of `triage capture`.
type captureFlags struct {
	filter, iface, out, compile, linkType, stop string
	duration                                    time.Duration
	count, maxBytes                             int64
	snapLen                                     int32
	list                                        bool
}

func (a *app) captureCommand() *cobra.Command {
	var f captureFlags
	cmd := &cobra.Command{
		Use:   "capture [pod/NAME] [-f FILTER | FILTER...] [-i IFACE|any] [--duration D] [-c N] [-s SNAPLEN] -w FILE|-",
		Short: "Capture the pod's packets with a tcpdump filter, as pcapng",
		Long: `capture asks the sidecar for the pod's packets: FILTER is tcpdump's filter language,
compiled to BPF and applied in the kernel; the packets arrive as pcapng, written to FILE as they
come (-w - writes to stdout: triage capture -w - | wireshark -k -i -, or | tcpdump -r -).
The capture ends at --duration, -c packets or --max-bytes, each capped by the server; Ctrl-C
ends it early and still leaves a valid file. A live line on stderr counts packets, bytes and drops.

  triage capture -i any -f 'tcp port 8080' --duration 10s -w web.pcapng
  triage capture --compile 'tcp[tcpflags] & tcp-syn != 0' -o json   (no capture: the program)
  triage capture --list-interfaces
  triage capture pod/checkout-7d9f -n shop -f 'port 443' -w checkout.pcapng

Capture needs the capturer role, and CAP_NET_RAW in the sidecar (explain says when it is missing).`,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			args = a.takeTarget(args, false)
			if len(args) > 0 {
				if f.filter != "" {
					return usageError{"give the filter either with -f or as arguments, not both"}
				}
				f.filter = strings.Join(args, " ")
			}
			switch {
			case cmd.Flags().Changed("compile"):
				return a.compileFilter(f)
			case f.list:
				return a.listInterfaces(cmd.Context())
			case f.stop != "":
				return a.stopCapture(cmd.Context(), f.stop)
			}
			return a.capture(cmd.Context(), f)
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.filter, "filter", "f", "", "tcpdump filter expression (pcap-filter(7)); empty captures everything")
	fl.StringVarP(&f.iface, "interface", "i", "any", "interface to capture on, or any")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long to capture (capped by the server's --capture-max-duration)")
	fl.Int64VarP(&f.count, "count", "c", 0, "stop after N packets (0: no count limit)")
	fl.Int32VarP(&f.snapLen, "snaplen", "s", 0, "bytes kept of each packet (0: the server's maximum, normally 262144)")
	fl.Int64Var(&f.maxBytes, "max-bytes", 0, "stop before the file exceeds this size (0: the server's maximum)")
	fl.StringVarP(&f.out, "write", "w", "", "write pcapng to FILE (- for stdout); required to capture")
	fl.StringVar(&f.compile, "compile", "", "print the BPF program for FILTER and exit, without capturing")
	fl.StringVar(&f.linkType, "link-type", "EN10MB", "link type for --compile: EN10MB or LINUX_SLL2 (what -i any captures)")
	fl.BoolVarP(&f.list, "list-interfaces", "D", false, "list the interfaces the sidecar can capture on")
	fl.StringVar(&f.stop, "stop", "", "stop the running capture with this id (printed when it starts)")
	return cmd
}

// bpfInstruction is one instruction as `tcpdump -ddd` prints it.
type bpfInstruction struct {
	Op uint16 `json:"op"`
	Jt uint8  `json:"jt"`
	Jf uint8  `json:"jf"`
	K  uint32 `json:"k"`
}

// compileFilter prints the program tcpdump -d / -ddd would, compiled here.
func (a *app) compileFilter(f captureFlags) error {
	var lt bpf.LinkType
	switch strings.ToUpper(f.linkType) {
	case "EN10MB", "ETHERNET", "1":
		lt = bpf.EN10MB
	case "LINUX_SLL2", "SLL2", "276":
		lt = bpf.LinuxSLL2
	default:
		return usageError{fmt.Sprintf("--link-type %q: use EN10MB or LINUX_SLL2", f.linkType)}
	}
	filter := f.compile
	if filter == "" {
		filter = f.filter
	}
	snap := uint32(bpf.DefaultSnaplen)
	if f.snapLen > 0 {
		snap = uint32(f.snapLen)
	}
	prog, err := bpf.Compile(filter, lt, snap)
	if err != nil {
		return runError{fmt.Errorf("%w in %q", err, filter)}
	}
	raw, err := xbpf.Assemble(prog)
	if err != nil {
		return runError{fmt.Errorf("assemble filter %q: %w", filter, err)}
	}
	if a.json() {
		out := make([]bpfInstruction, len(raw))
		for i, r := range raw {
			out[i] = bpfInstruction{Op: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	var sb strings.Builder
	for i, ins := range prog {
		fmt.Fprintf(&sb, "(%03d) %s\n", i, ins)
	}
	_, err = io.WriteString(a.stdout, sb.String())
	return err
}

func (a *app) listInterfaces(ctx context.Context) error {
	c, err := a.dial(ctx, auth.Viewer)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.ListInterfaces(ctx)
	if err != nil {
		return runError{err}
	}
	if a.json() {
		return render.JSON(a.stdout, resp)
	}
	return render.Interfaces(a.stdout, resp, a.style())
}

func (a *app) stopCapture(ctx context.Context, id string) error {
	c, err := a.dial(ctx, auth.Capturer)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.StopCapture(ctx, id); err != nil {
		return runError{err}
	}
	_, err = fmt.Fprintf(a.stdout, "capture %s is stopping\n", id)
	return err
}

// capture streams the capture into the file (or stdout) and reports.
func (a *app) capture(ctx context.Context, f captureFlags) error {
	switch {
	case f.out == "":
		return usageError{"-w FILE is required (-w - writes pcapng to stdout)"}
	case f.duration < 0 || f.count < 0 || f.maxBytes < 0 || f.snapLen < 0:
		return usageError{"--duration, -c, -s and --max-bytes must not be negative"}
	case f.out == "-" && a.json():
		return usageError{"-w - writes pcapng to stdout: drop -o json"}
	}
	req := &triagev1.CaptureRequest{Filter: f.filter, Interface: f.iface, SnapLength: f.snapLen, MaxPackets: f.count, MaxBytes: f.maxBytes}
	if f.duration > 0 {
		req.Duration = durationpb.New(f.duration)
	}
	// Local check first: a typo is reported at once, with its position, and
	// never reaches the pod.
	lt := bpf.EN10MB
	if f.iface == "any" || f.iface == "" {
		lt = bpf.LinuxSLL2
	}
	if _, err := bpf.Compile(f.filter, lt, bpf.DefaultSnaplen); err != nil {
		var se *bpf.SyntaxError
		if errors.As(err, &se) {
			return runError{fmt.Errorf("%w in %q", err, f.filter)}
		}
	}

	c, err := a.dial(ctx, auth.Capturer)
	if err != nil {
		return err
	}
	defer c.Close()

	var w io.Writer = a.stdout
	var file *os.File
	if f.out != "-" {
		file, err = os.Create(f.out)
		if err != nil {
			return runError{fmt.Errorf("create %s: %w", f.out, err)}
		}
		defer file.Close()
		w = file
	}

	// The stream outlives the first Ctrl-C (ctx): that asks the server to
	// stop, and the file gets its last blocks; only if the server does not
	// finish within stopGrace is the stream cut.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var (
		mu      sync.Mutex
		id      string
		stopped bool
	)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		mu.Lock()
		stopped = true
		cid := id
		mu.Unlock()
		if cid != "" {
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = c.StopCapture(sctx, cid)
			scancel()
		}
		select {
		case <-done:
		case <-time.After(stopGrace):
			cancel()
		}
	}()

	p := newCaptureProgress(a.stderr, a.stderrTerminal, f.iface, f.duration)
	defer p.done(false)
	art, err := c.Capture(streamCtx, req, w,
		client.OnHeader(func(h *triagev1.ArtifactHeader) error {
			mu.Lock()
			id = h.GetAttributes()["capture_id"]
			mu.Unlock()
			p.started(h)
			return nil
		}),
		client.OnProgress(p.setBytes),
		client.OnCounters(p.setCounters))
	if file != nil {
		// Regular files only: /dev/null and pipes refuse fsync.
		if st, serr := file.Stat(); serr == nil && st.Mode().IsRegular() {
			if serr := file.Sync(); serr != nil && err == nil {
				err = fmt.Errorf("sync %s: %w", f.out, serr)
			}
		}
	}
	mu.Lock()
	wasStopped := stopped
	mu.Unlock()
	if err != nil {
		if wasStopped && art != nil && art.Header != nil {
			p.done(true)
			fmt.Fprintf(a.stderr, "capture cut after Ctrl-C: %s of whole pcapng blocks kept in %s (no statistics block)\n", render.Bytes(uint64(art.Written)), f.out)
			return nil
		}
		return runError{err}
	}
	p.setCounters(&triagev1.ArtifactProgress{Counters: art.Trailer.GetCounters(), Elapsed: art.Trailer.GetDuration()})
	p.done(true)
	return a.reportCapture(f, art)
}

// reportCapture prints the trailer: JSON on stdout for scripts, a summary
// (stdout when writing a file, stderr when pcapng goes to stdout).
func (a *app) reportCapture(f captureFlags, art *client.Artifact) error {
	t := art.Trailer
	msg := a.stdout
	if f.out == "-" {
		msg = a.stderr
	}
	for _, n := range t.GetNotes() {
		fmt.Fprintf(a.stderr, "note: %s\n", n)
	}
	if t.GetStopReason() == "error" {
		fmt.Fprintf(a.stderr, "warning: the capture ended on an error: %s\n", t.GetTruncatedReason())
	}
	if a.json() {
		parts := map[string]json.RawMessage{}
		cs := t.GetCounters()
		parts["file"], _ = json.Marshal(f.out)
		parts["packets"], _ = json.Marshal(cs["packets"])
		parts["bytes"], _ = json.Marshal(art.Written)
		parts["kernel_drops"], _ = json.Marshal(cs["kernel_drops"])
		parts["stream_drops"], _ = json.Marshal(cs["stream_drops"])
		parts["stop_reason"], _ = json.Marshal(t.GetStopReason())
		var err error
		if parts["header"], err = render.MarshalJSON(art.Header); err != nil {
			return err
		}
		if parts["trailer"], err = render.MarshalJSON(t); err != nil {
			return err
		}
		return render.Object(a.stdout, []string{"file", "packets", "bytes", "kernel_drops", "stream_drops", "stop_reason", "header", "trailer"}, parts)
	}
	cs := t.GetCounters()
	took := ""
	if t.GetDuration() != nil {
		took = " in " + render.Duration(t.GetDuration().AsDuration())
	}
	fmt.Fprintf(msg, "captured %d packets (%s) on %s%s, stopped by %s; kernel drops %d, stream drops %d\n",
		cs["packets"], render.Bytes(uint64(art.Written)), art.Header.GetAttributes()["interface"], took, stopWords(t.GetStopReason()), cs["kernel_drops"], cs["stream_drops"])
	if f.out != "-" {
		fmt.Fprintf(msg, "read it with: tshark -r %s   (or tcpdump -r %s, wireshark %s)\n", shellQuote(f.out), shellQuote(f.out), shellQuote(f.out))
	}
	return nil
}

func stopWords(r string) string {
	switch r {
	case "duration":
		return "its duration"
	case "count":
		return "its packet count"
	case "bytes":
		return "its size limit"
	case "client":
		return "request (Ctrl-C or --stop)"
	case "":
		return "the server"
	}
	return r
}

// captureProgress draws "capture on any: 3.2s / 10s, 812 packets, 1.1 MiB,
// drops 0 kernel / 0 stream" on a terminal's stderr.
type captureProgress struct {
	*progress
	iface string
	mu    sync.Mutex
	cs    map[string]uint64
}

func newCaptureProgress(w io.Writer, live bool, iface string, total time.Duration) *captureProgress {
	cp := &captureProgress{iface: iface}
	cp.progress = startProgressLine(w, live, total, "capture", cp.line)
	return cp
}

func (p *captureProgress) started(h *triagev1.ArtifactHeader) {
	p.mu.Lock()
	p.iface = h.GetAttributes()["interface"]
	p.mu.Unlock()
}

func (p *captureProgress) setBytes(n int64) { p.Set(n) }

func (p *captureProgress) setCounters(pr *triagev1.ArtifactProgress) {
	p.mu.Lock()
	p.cs = pr.GetCounters()
	p.mu.Unlock()
}

func (p *captureProgress) line(pr *progress) string {
	p.mu.Lock()
	cs, iface := p.cs, p.iface
	p.mu.Unlock()
	elapsed := time.Since(pr.start).Truncate(100 * time.Millisecond)
	when := render.Duration(elapsed)
	if pr.total > 0 {
		when += " / " + render.Duration(pr.total)
	}
	return fmt.Sprintf("capture on %s: %s, %d packets, %s, drops %d kernel / %d stream",
		iface, when, cs["packets"], render.Bytes(uint64(pr.bytes.Load())), cs["kernel_drops"], cs["stream_drops"])
}

func (p *captureProgress) done(ok bool) { p.Done(ok) }
