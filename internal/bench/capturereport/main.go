// Command capturereport is the packet-capture half of `make bench` (issue
// 4's "Done when"). In one run, on loopback, against one triage-sidecar
// (plaintext on a Unix socket, so its own gRPC traffic stays off lo), it
// measures:
//
//  1. small UDP packets (64-byte payloads) paced at -udp-rate (200,000/s)
//     by a bounded in-process generator for -udp-duration into a sink,
//     captured by `tcpdump -w /dev/null` and by the sidecar (Capture through
//     the Go client into a counting discard), one after the other with the
//     same filter and an 8 MiB ring each, -rounds times interleaved:
//     packets captured, kernel and stream drops, against what the
//     generator sent;
//  2. the same for a bulk TCP flow pumped as fast as it goes for
//     -tcp-duration, filter 'tcp port P', with `tcpdump -w -` into a pipe as
//     a second, streaming anchor: packets, drops, bytes;
//  3. the sidecar's peak RSS (VmHWM) while it streams a 1 GiB capture of
//     bulk TCP (ended by max bytes), its idle RSS before, the capture's
//     throughput and the sidecar's CPU;
//  4. cancel-to-stop latency on an idle filter: StopCapture to the trailer,
//     and cancelling the client's context to the next capture admitted;
//  5. the time to compile libpcap's filter test tables (../shared/fixtures/
//     bpf-filters) with internal/bpf for EN10MB and LINUX_SLL2;
//
// and checks `triage capture -w /dev/null -o json` (the -cli binary) once.
//
// The result is markdown on stdout, also written into -readme between
// <!-- bench-capture:start --> and <!-- bench-capture:end --> (the pair is
// added after the runtime section when missing).
//
//	go run ./internal/bench/capturereport -readme README.md -sidecar bin/triage-sidecar -cli bin/triage
//
// Binaries not given are built into a temporary directory. It needs root
// (CAP_NET_RAW) and tcpdump on PATH.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/internal/bench"
)

type params struct {
	readme       string
	sidecar, cli string
	fixtures     string
	udpRate      int
	udpPayload   int
	udpD, tcpD   time.Duration
	rounds       int
	drain        time.Duration
	streamBytes  int64
	cancelTries  int
	compilePass  int
	ringBytes    int
	skip         string
}

func main() {
	var p params
	flag.StringVar(&p.readme, "readme", "", "README to write the tables into, between the bench-capture markers (empty: stdout only)")
	flag.StringVar(&p.sidecar, "sidecar", "", "triage-sidecar binary (empty: go build it)")
	flag.StringVar(&p.cli, "cli", "", "triage binary (empty: go build it)")
	flag.StringVar(&p.fixtures, "fixtures", filepath.Join("..", "shared", "fixtures", "bpf-filters"), "libpcap's filter test tables (relative to the module root)")
	flag.IntVar(&p.udpRate, "udp-rate", 200_000, "UDP packets per second the generator aims at")
	flag.IntVar(&p.udpPayload, "udp-payload", 64, "UDP payload bytes")
	flag.DurationVar(&p.udpD, "udp-duration", 4*time.Second, "how long the UDP generator runs per capture")
	flag.DurationVar(&p.tcpD, "tcp-duration", 2*time.Second, "how long the bulk TCP flow runs per capture")
	flag.IntVar(&p.rounds, "rounds", 3, "interleaved rounds of each side-by-side comparison (median)")
	flag.DurationVar(&p.drain, "drain", 1200*time.Millisecond, "wait after the traffic stops before stopping a capturer (tcpdump's ring blocks retire after 1 s)")
	flag.Int64Var(&p.streamBytes, "stream-bytes", 1<<30, "size of the capture streamed for the peak RSS")
	flag.IntVar(&p.cancelTries, "cancel-tries", 10, "tries of each cancel-to-stop measurement")
	flag.IntVar(&p.compilePass, "compile-passes", 11, "passes over the filter corpus (median per filter)")
	flag.StringVar(&p.skip, "skip", "", "sections to leave out, comma-separated: udp,tcp,stream,cancel,compile (for trying things; the README is then not written)")
	flag.Parse()
	p.ringBytes = 8 << 20
	if p.rounds < 1 || p.cancelTries < 1 || p.compilePass < 1 || p.udpRate < 1 || p.udpPayload < 1 || p.streamBytes < 1<<20 {
		fmt.Fprintln(os.Stderr, "capturereport: -rounds, -cancel-tries, -compile-passes and -udp-rate must be at least 1, -udp-payload at least 1, -stream-bytes at least 1 MiB")
		os.Exit(2)
	}
	if err := run(p); err != nil {
		fmt.Fprintln(os.Stderr, "capturereport:", err)
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-capture: "+format+"\n", args...)
}

type result struct {
	tcpdumpVersion string
	udp, tcp       comparison
	stream         streamResult
	cancel         cancelResult
	cli            *cliResult
	compile        compileResult
	took           time.Duration
}

func run(p params) error {
	start := time.Now().UTC()
	mach := machine() // load average before we add any
	tmp, err := os.MkdirTemp("", "triage-bench-capture-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	skip := func(s string) bool { return strings.Contains(","+p.skip+",", ","+s+",") }
	needSidecar := !skip("udp") || !skip("tcp") || !skip("stream") || !skip("cancel")
	if needSidecar && os.Geteuid() != 0 {
		return errors.New("capturing needs root (CAP_NET_RAW); run as root or with -skip udp,tcp,stream,cancel")
	}
	for _, b := range []struct {
		dst *string
		pkg string
	}{
		{&p.sidecar, "./cmd/triage-sidecar"},
		{&p.cli, "./cmd/triage"},
	} {
		if *b.dst == "" && needSidecar {
			if *b.dst, err = build(tmp, b.pkg); err != nil {
				return err
			}
		}
	}

	var r result
	if !skip("udp") || !skip("tcp") {
		if r.tcpdumpVersion, err = tcpdumpVersion(); err != nil {
			return err
		}
	}
	if needSidecar {
		sc, err := startSidecar(p, tmp)
		if err != nil {
			return err
		}
		defer sc.stop()
		if !skip("stream") { // first, so VmHWM is this capture's
			if r.stream, err = measureStream(p, sc); err != nil {
				return fmt.Errorf("1 GiB stream: %w", err)
			}
		}
		if !skip("udp") {
			if r.udp, err = compare(p, sc, udpTraffic(p)); err != nil {
				return fmt.Errorf("UDP: %w", err)
			}
		}
		if !skip("tcp") {
			if r.tcp, err = compare(p, sc, tcpTraffic(p)); err != nil {
				return fmt.Errorf("bulk TCP: %w", err)
			}
		}
		if !skip("cancel") {
			if r.cancel, err = measureCancel(p, sc); err != nil {
				return fmt.Errorf("cancel: %w", err)
			}
		}
		cr := checkCLI(p, sc, tmp)
		r.cli = &cr
		if err := sc.alive(); err != nil {
			return err
		}
	}
	if !skip("compile") {
		if r.compile, err = measureCompile(p); err != nil {
			return fmt.Errorf("compile: %w", err)
		}
	}
	r.took = time.Since(start)
	table := render(p, r, start, mach, skip)
	fmt.Print(table)
	if p.readme != "" && p.skip == "" {
		writeReadme(p.readme, table)
	}
	return nil
}

// build builds pkg (relative to the module root, the working directory of
// `make bench`) into dir.
func build(dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	progress("go build %s", pkg)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return out, nil
}

// sidecar is the triage-sidecar under test: plaintext on a Unix socket (so
// its own traffic stays off lo), uid 0 a capturer.
type sidecar struct {
	cmd    *exec.Cmd
	sock   string
	log    string
	exited chan struct{}
}

// sidecarMaxBytes is the sidecar's --capture-max-bytes: the comparisons'
// captures must end by StopCapture, not by size (a bulk TCP capture
// streams hundreds of MiB a second); the 1 GiB stream asks for its size.
const sidecarMaxBytes = 64 << 30

const policyYAML = "bindings:\n  - identities: [\"uid:0\"]\n    roles: [capturer]\n"

func startSidecar(p params, tmp string) (*sidecar, error) {
	s := &sidecar{sock: filepath.Join(tmp, "sidecar.sock"), log: filepath.Join(tmp, "sidecar.log"), exited: make(chan struct{})}
	policy := filepath.Join(tmp, "policy.yaml")
	if err := os.WriteFile(policy, []byte(policyYAML), 0o600); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(p.sidecar, "--insecure-local", "--addr", "", "--unix-socket", s.sock, "--policy-file", policy,
		"--audit-log", filepath.Join(tmp, "audit.log"),
		"--capture-max-bytes", fmt.Sprint(max(p.streamBytes, sidecarMaxBytes)), "--capture-max-duration", "10m",
		"--capture-ring-bytes", fmt.Sprint(p.ringBytes))
	f, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = f, f
	err = s.cmd.Start()
	f.Close()
	if err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	progress("started %s (pid %d) on %s", filepath.Base(p.sidecar), s.cmd.Process.Pid, s.sock)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(s.sock); err == nil {
			return s, nil
		}
		if err := s.alive(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, s.failure(errors.New("not listening within 20 s"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *sidecar) pid() int { return s.cmd.Process.Pid }

// dial returns a Go client of the sidecar (plaintext on its socket, uid 0).
func (s *sidecar) dial() (*client.Client, error) {
	return client.Dial(context.Background(), client.Options{Addr: s.addr(), Insecure: true, Timeout: 30 * time.Second})
}
func (s *sidecar) addr() string { return "unix://" + s.sock }

func (s *sidecar) alive() error {
	select {
	case <-s.exited:
		return s.failure(errors.New("exited"))
	default:
		return nil
	}
}

func (s *sidecar) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *sidecar) failure(err error) error {
	b, _ := os.ReadFile(s.log)
	tail := strings.TrimSpace(string(b))
	if len(tail) > 2000 {
		tail = "..." + tail[len(tail)-2000:]
	}
	return fmt.Errorf("triage-sidecar: %w\n%s", err, tail)
}

// tcpdumpVersion is the first two lines of `tcpdump --version`, joined.
func tcpdumpVersion() (string, error) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		return "", errors.New("tcpdump is not on PATH (apt-get install -y tcpdump); it is the anchor of the side-by-side rows")
	}
	out, err := exec.Command("tcpdump", "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("tcpdump --version: %w: %s", err, out)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() && len(lines) < 2 {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, ", "), nil
}

// machine describes this machine in one line.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	return fmt.Sprintf("%s, %d CPUs, Linux %s, %s, load average %s at the start", cpu, runtime.NumCPU(), kernel, runtime.Version(), load)
}

// writeReadme puts table into the README's capture section, or warns.
func writeReadme(path, table string) {
	if err := bench.RewriteFile(path, func(doc string) (string, error) { return bench.UpsertCaptureSection(doc, table) }); err != nil {
		progress("warning: %v; README not updated", err)
		return
	}
	progress("wrote the capture tables into %s", path)
}
