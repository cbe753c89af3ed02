package capture_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar"
	"github.com/triage-sh/triage/sidecar/capability"
	"github.com/triage-sh/triage/sidecar/capture"
	"github.com/triage-sh/triage/sidecar/sidecartest"
)

// startUnixSidecar serves the real sidecar in-process on a Unix socket
// (plaintext, uid 0 a capturer), as the capture report runs it, so that
// its gRPC traffic stays off lo.
func startUnixSidecar(b *testing.B) *client.Client {
	b.Helper()
	dir := b.TempDir()
	sock := filepath.Join(dir, "s.sock")
	o := sidecar.DefaultOptions()
	o.Addr = ""
	o.UnixSocket = sock
	o.InsecureLocal = true
	o.PolicyFile = capturerPolicy(b, dir)
	co := capture.DefaultOptions()
	co.MaxBytes = 64 << 30 // as the report runs it: captures end by StopCapture
	caps := []capability.Capability{{
		Name:     "capture",
		Register: func(s grpc.ServiceRegistrar, d capability.Deps) (func(), error) { return capture.Register(s, d, co) },
	}}
	// New listens: the socket is there once Serve has started.
	sidecartest.Serve(b, sidecar.Config{Options: o, Capabilities: caps, Logger: slog.New(slog.DiscardHandler), AuditWriter: io.Discard})
	return dialUnix(b, sock)
}

// startSidecarProcess runs the sidecar binary bin as the capture report
// does (plaintext on a Unix socket, captures ended by StopCapture), so that
// the client and the traffic share this process and the sidecar has its
// own.
func startSidecarProcess(b *testing.B, bin string) *client.Client {
	b.Helper()
	dir := b.TempDir()
	sock := filepath.Join(dir, "s.sock")
	cmd := exec.Command(bin, "--insecure-local", "--addr", "", "--unix-socket", sock, "--policy-file", capturerPolicy(b, dir),
		"--audit-log", filepath.Join(dir, "audit.log"), "--capture-max-bytes", "68719476736", "--capture-max-duration", "10m")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("sidecar did not listen on %s", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return dialUnix(b, sock)
}

// bulkTCP pumps a loopback TCP connection in 256 KiB writes until ctx ends
// and returns the bytes moved.
func bulkTCP(ctx context.Context, ln net.Listener) (int64, error) {
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	snd, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer snd.Close()
	rcv, ok := <-accepted
	if !ok {
		return 0, fmt.Errorf("accept failed")
	}
	defer rcv.Close()
	go func() {
		buf := make([]byte, 256<<10)
		for {
			if _, err := rcv.Read(buf); err != nil {
				return
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = snd.SetWriteDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 256<<10)
	var sent int64
	for {
		n, err := snd.Write(buf)
		sent += int64(n)
		if err != nil {
			return sent, nil
		}
	}
}

type countingDiscard struct{ n atomic.Int64 }

func (d *countingDiscard) Write(p []byte) (int, error) { d.n.Add(int64(len(p))); return len(p), nil }

// BenchmarkCaptureBulkTCP captures a 2 s bulk TCP flow on lo through the
// sidecar (in this process, on a Unix socket) and the Go client into a
// discard, as the capture report's bulk TCP case does, and reports the
// trailer's counters per capture. Run it with -cpuprofile to see where the
// sidecar and the client spend their time, but compare packet counts only
// between runs made alike: profiling (SIGPROF every 10 ms interrupting the
// traffic's long send and receive syscalls) lets the client's goroutines
// run sooner and raised the packets captured by a third or more here. With
// TRIAGE_BENCH_SIDECAR set to a triage-sidecar binary, the sidecar runs as
// that process instead, as in the report (the profile then holds the
// client and the traffic).
func BenchmarkCaptureBulkTCP(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("packet capture needs root (CAP_NET_RAW)")
	}
	var c *client.Client
	if bin := os.Getenv("TRIAGE_BENCH_SIDECAR"); bin != "" {
		c = startSidecarProcess(b, bin)
	} else {
		c = startUnixSidecar(b)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	var packets, kdrops, sdrops, kpackets, moved, file float64
	for b.Loop() {
		hdr := make(chan string, 1)
		type res struct {
			art *client.Artifact
			err error
		}
		done := make(chan res, 1)
		var w countingDiscard
		go func() {
			art, err := c.Capture(context.Background(), &triagev1.CaptureRequest{Filter: fmt.Sprintf("tcp port %d", port), Interface: "lo", Duration: durationpb.New(60 * time.Second)},
				&w, client.OnHeader(func(h *triagev1.ArtifactHeader) error { hdr <- h.GetAttributes()["capture_id"]; return nil }))
			done <- res{art, err}
		}()
		id := <-hdr
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := bulkTCP(ctx, ln)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(1200 * time.Millisecond)
		if err := c.StopCapture(context.Background(), id); err != nil {
			b.Fatal(err)
		}
		r := <-done
		if r.err != nil {
			b.Fatal(r.err)
		}
		cs := r.art.Trailer.GetCounters()
		if cs["packets"]+cs["stream_drops"] > cs["kernel_packets"] {
			b.Fatalf("counters do not add up: %v", cs)
		}
		packets += float64(cs["packets"])
		kdrops += float64(cs["kernel_drops"])
		sdrops += float64(cs["stream_drops"])
		kpackets += float64(cs["kernel_packets"])
		moved += float64(n)
		file += float64(w.n.Load())
	}
	n := float64(b.N)
	b.ReportMetric(packets/n, "packets/op")
	b.ReportMetric(kdrops/n, "kdrops/op")
	b.ReportMetric(sdrops/n, "sdrops/op")
	b.ReportMetric(kpackets/n, "kpackets/op")
	b.ReportMetric(moved/n/(1<<20), "flowMiB/op")
	b.ReportMetric(file/n/(1<<20), "fileMiB/op")
}
