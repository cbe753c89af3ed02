// Command report is the harness behind `make bench`. In one run it measures,
// on loopback:
//
//  1. resident memory (VmRSS, and VmHWM, from /proc/PID/status) of
//     triage-sidecar in development mode with the audit log on, idle 2 s
//     after it serves and again 2 s after 10,000 Explain calls from 8 mTLS
//     connections; and the same for the floor (./floor: bare grpc-go, TLS 1.3
//     mTLS with the same certificates, health service only) with 10,000
//     grpc.health.v1.Health/Check calls;
//  2. Explain p50/p99 latency and throughput at 64 mTLS connections, each
//     making a fixed number of calls in a closed loop, next to Health/Check
//     on the same sidecar (and on the floor) measured the same way.
//
// Each server is a child process measured alone; nothing is forced in it (no
// GC, no GOGC or GOMEMLIMIT). The result is a markdown table on stdout,
// also written into -readme between <!-- bench:start --> and
// <!-- bench:end --> (left alone, with a warning, if the markers are
// missing).
//
//	go run ./internal/bench/report -readme README.md -sidecar bin/triage-sidecar -floor bin/triage-bench-floor
//
// Without -sidecar or -floor it builds them into a temporary directory.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/triage-sh/triage/internal/auth"
	"github.com/triage-sh/triage/internal/bench"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Goals from the issue: the sidecar's RSS within goalRatio of the floor's
// and under goalRSS.
const (
	goalRatio = 1.5
	goalRSS   = 20 << 20
)

type params struct {
	readme, sidecar, floor string
	calls, loadConns       int // RSS run: total calls over loadConns connections
	latConns, perConn      int // latency run: latConns connections x perConn calls
	settle                 time.Duration
	sidecarEnv             string // extra KEY=VALUE,... for the sidecar only
}

func main() {
	var p params
	flag.StringVar(&p.readme, "readme", "", "README to write the table into, between the bench markers (empty: stdout only)")
	flag.StringVar(&p.sidecar, "sidecar", "", "triage-sidecar binary (empty: go build it)")
	flag.StringVar(&p.floor, "floor", "", "triage-bench-floor binary (empty: go build it)")
	flag.IntVar(&p.calls, "calls", 10000, "calls made between the idle and the loaded RSS readings")
	flag.IntVar(&p.loadConns, "load-conns", 8, "connections making those calls")
	flag.IntVar(&p.latConns, "conns", 64, "connections in the latency run")
	flag.IntVar(&p.perConn, "per-conn", 100, "calls per connection in the latency run")
	flag.DurationVar(&p.settle, "settle", 2*time.Second, "wait before each RSS reading")
	flag.StringVar(&p.sidecarEnv, "sidecar-env", "", "extra environment for the sidecar only, KEY=VALUE[,KEY=VALUE] (e.g. GOMEMLIMIT=16MiB), to try runtime settings; shown in the table")
	flag.Parse()
	if err := run(p); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is everything the table shows.
type result struct {
	start                  time.Time
	sidecarIdle, sidecarLd bench.Memory
	sidecarPeak            bench.Memory // after the latency runs
	floorIdle, floorLd     bench.Memory
	explain, health, floor bench.Summary
	auditBytes, auditLines int64
	sidecarMemLimit        bool // the sidecar logged that it set GOMEMLIMIT from its cgroup
	goVersion              string
}

func run(p params) error {
	r := result{start: time.Now().UTC()}
	tmp, err := os.MkdirTemp("", "triage-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if p.sidecar == "" {
		if p.sidecar, err = build(tmp, "triage-sidecar", "github.com/triage-sh/triage/cmd/triage-sidecar"); err != nil {
			return err
		}
	}
	if p.floor == "" {
		if p.floor, err = build(tmp, "triage-bench-floor", "github.com/triage-sh/triage/internal/bench/floor"); err != nil {
			return err
		}
	}
	r.goVersion = runtime.Version()
	if bi, err := buildinfo.ReadFile(p.sidecar); err == nil {
		r.goVersion = bi.GoVersion
	}

	// The development files, made here so the floor can use the same
	// certificates; the sidecar's --dev reuses them.
	dev, err := auth.EnsureDev(filepath.Join(tmp, "dev"))
	if err != nil {
		return err
	}
	tlsConf, err := auth.ClientTLS(dev.CA, dev.ClientCert, dev.ClientKey, "localhost")
	if err != nil {
		return err
	}
	explainCall := func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := triagev1.NewExplainServiceClient(cc).Explain(ctx, &triagev1.ExplainRequest{})
		return err
	}
	ctx := context.Background()

	// The floor.
	progress("floor: starting")
	fl, err := startFloor(p.floor, dev, tmp)
	if err != nil {
		return err
	}
	defer fl.stop()
	if r.floorIdle, r.floorLd, err = measureRSS(ctx, p, fl, tlsConf, healthCall); err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	progress("floor: latency, %d connections x %d Health/Check", p.latConns, p.perConn)
	if r.floor, err = latency(ctx, fl.addr, tlsConf, p.latConns, p.perConn, healthCall); err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	fl.stop()

	// The sidecar.
	progress("sidecar: starting")
	auditLog := filepath.Join(tmp, "audit.log")
	sc, err := startSidecar(p.sidecar, dev.Dir, auditLog, tmp, p.sidecarEnv)
	if err != nil {
		return err
	}
	defer sc.stop()
	if r.sidecarIdle, r.sidecarLd, err = measureRSS(ctx, p, sc, tlsConf, explainCall); err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	progress("sidecar: latency, %d connections x %d Explain", p.latConns, p.perConn)
	if r.explain, err = latency(ctx, sc.addr, tlsConf, p.latConns, p.perConn, explainCall); err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	progress("sidecar: latency, %d connections x %d Health/Check", p.latConns, p.perConn)
	if r.health, err = latency(ctx, sc.addr, tlsConf, p.latConns, p.perConn, healthCall); err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	if r.sidecarPeak, err = bench.ReadMemory(sc.pid()); err != nil {
		return err
	}
	sc.stop()
	if b, err := os.ReadFile(sc.log); err == nil {
		r.sidecarMemLimit = strings.Contains(string(b), "GOMEMLIMIT set")
	}
	if b, err := os.ReadFile(auditLog); err == nil {
		r.auditBytes, r.auditLines = int64(len(b)), int64(strings.Count(string(b), "\n"))
	}

	table := render(p, r, machine())
	fmt.Print(table)
	if p.readme != "" {
		writeReadme(p.readme, table)
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// build builds pkg into dir/name with the go command on PATH.
func build(dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	progress("go build %s", pkg)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return out, nil
}

func healthCall(ctx context.Context, cc *grpc.ClientConn) error {
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		err = fmt.Errorf("health: %v", resp.GetStatus())
	}
	return err
}

// server is a child process serving gRPC on addr.
type server struct {
	name   string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	log    string        // its stderr
	once   sync.Once
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// start runs cmd, its stderr to a file, and watches for its exit.
func start(name string, cmd *exec.Cmd, tmp string) (*server, error) {
	s := &server{name: name, cmd: cmd, exited: make(chan struct{}), log: filepath.Join(tmp, name+".log")}
	f, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = f
	err = cmd.Start()
	f.Close()
	if err != nil {
		return nil, err
	}
	go func() { cmd.Wait(); close(s.exited) }()
	return s, nil
}

// stop ends the process: SIGTERM, then SIGKILL after 5 s.
func (s *server) stop() {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// failure describes an early exit with the end of the process's log.
func (s *server) failure(err error) error {
	b, _ := os.ReadFile(s.log)
	tail := strings.TrimSpace(string(b))
	if len(tail) > 2000 {
		tail = "..." + tail[len(tail)-2000:]
	}
	return fmt.Errorf("%s: %w\n%s", s.name, err, tail)
}

func startFloor(bin string, dev *auth.DevFiles, tmp string) (*server, error) {
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-tls-cert", dev.ServerCert, "-tls-key", dev.ServerKey, "-client-ca", dev.CA)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s, err := start("floor", cmd, tmp)
	if err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				line <- a
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case s.addr = <-line:
		return s, nil
	case <-s.exited:
		return nil, s.failure(errors.New("exited before listening"))
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, s.failure(errors.New("did not print its address within 10s"))
	}
}

func startSidecar(bin, devDir, auditLog, tmp, env string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--dev", devDir, "--addr", addr, "--audit-log", auditLog)
	if env != "" {
		cmd.Env = append(os.Environ(), strings.Split(env, ",")...)
	}
	s, err := start("triage-sidecar", cmd, tmp)
	if err != nil {
		return nil, err
	}
	s.addr = addr
	return s, nil
}

// freePort returns a loopback address with a port free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func dial(addr string, conf *tls.Config) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
}

// waitServing polls health until s serves, it exits, or 20 s pass.
func waitServing(ctx context.Context, s *server, conf *tls.Config) error {
	cc, err := dial(s.addr, conf)
	if err != nil {
		return err
	}
	defer cc.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err = healthCall(cctx, cc)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return s.failure(errors.New("exited before serving"))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return s.failure(fmt.Errorf("not serving after 20s: %w", err))
		}
	}
}

type callFunc func(context.Context, *grpc.ClientConn) error

// measureRSS waits for s to serve, reads its memory idle, makes p.calls
// calls over p.loadConns connections, closes them, and reads it again.
func measureRSS(ctx context.Context, p params, s *server, conf *tls.Config, call callFunc) (idle, loaded bench.Memory, err error) {
	if err := waitServing(ctx, s, conf); err != nil {
		return idle, loaded, err
	}
	time.Sleep(p.settle)
	if idle, err = bench.ReadMemory(s.pid()); err != nil {
		return idle, loaded, err
	}
	progress("%s: idle RSS %s; %d calls over %d connections", s.name, bench.MiB(idle.RSS), p.calls, p.loadConns)
	conns, err := dialAll(ctx, s.addr, conf, p.loadConns)
	if err != nil {
		return idle, loaded, err
	}
	var left atomic.Int64
	left.Store(int64(p.calls))
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, cc := range conns {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := call(ctx, cc); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	closeAll(conns) // what stays is what the server keeps after the work
	if err := errors.Join(errs...); err != nil {
		return idle, loaded, err
	}
	time.Sleep(p.settle)
	loaded, err = bench.ReadMemory(s.pid())
	return idle, loaded, err
}

// dialAll opens n connections and makes one health call on each, so every
// TLS handshake is done before anything is measured.
func dialAll(ctx context.Context, addr string, conf *tls.Config, n int) ([]*grpc.ClientConn, error) {
	conns := make([]*grpc.ClientConn, 0, n)
	for range n {
		cc, err := dial(addr, conf)
		if err == nil {
			err = healthCall(ctx, cc)
		}
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, cc)
	}
	return conns, nil
}

func closeAll(conns []*grpc.ClientConn) {
	for _, cc := range conns {
		cc.Close()
	}
}

// latency opens conns connections; once all are up, each makes perConn
// calls in a closed loop, one at a time. It returns the distribution of the
// calls' latencies and the throughput over the whole run.
func latency(ctx context.Context, addr string, conf *tls.Config, conns, perConn int, call callFunc) (bench.Summary, error) {
	ccs, err := dialAll(ctx, addr, conf, conns)
	if err != nil {
		return bench.Summary{}, err
	}
	defer closeAll(ccs)
	lat := make([]time.Duration, conns*perConn)
	errs := make([]error, conns)
	startGate := make(chan struct{})
	var wg sync.WaitGroup
	for i, cc := range ccs {
		wg.Go(func() {
			<-startGate
			mine := lat[i*perConn : (i+1)*perConn]
			for j := range mine {
				t := time.Now()
				if err := call(ctx, cc); err != nil {
					errs[i] = err
					return
				}
				mine[j] = time.Since(t)
			}
		})
	}
	t0 := time.Now()
	close(startGate)
	wg.Wait()
	wall := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		return bench.Summary{}, err
	}
	return bench.Summarize(lat, wall), nil
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
	kernel := "unknown kernel"
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	procs := 0 // Explain's cost grows with the processes it sees (a pod has a handful)
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				procs++
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs (nproc), %s, load average %s and %d processes in /proc at the start", cpu, runtime.NumCPU(), kernel, load, procs)
}

// render formats the result as markdown.
func render(p params, r result, mach string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	ratio := func(a, f int64) float64 { return float64(a) / float64(f) }
	okRSS := func(m, f bench.Memory) bool { return m.RSS <= goalRSS && ratio(m.RSS, f.RSS) <= goalRatio }
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}

	w("Measured with `make bench` on %s UTC: %s; %s.\n", r.start.Format("2006-01-02 15:04"), mach, r.goVersion)
	w("Client and server share this machine's CPUs; all traffic is on loopback. ")
	w("The floor is a bare grpc-go server (same grpc version) with only the health service, TLS 1.3 with the same mTLS certificates. ")
	w("The sidecar runs in development mode with the audit log on, as in production, and with its default `--release-memory-idle 1s`: once no call has run for a second after a busy period it collects and returns the freed memory to the OS (the floor has no such thing). Nothing else is forced in either server (no GOGC or GOMEMLIMIT)")
	if p.sidecarEnv != "" {
		w(", except that the sidecar ran with `%s`", p.sidecarEnv)
	}
	if r.sidecarMemLimit {
		w("; the sidecar set its own GOMEMLIMIT from its cgroup's memory.max")
	} else {
		w("; the sidecar found no cgroup memory limit to set GOMEMLIMIT from")
	}
	w(".\n\n")

	w("**Memory** (VmRSS; goal: sidecar within %.1fx of the floor and under %d MiB)\n\n", goalRatio, goalRSS>>20)
	w("| | triage-sidecar | floor | ratio | goal |\n|---|---:|---:|---:|---|\n")
	w("| RSS idle (%s after serving) | %s | %s | %.2fx | %s |\n", p.settle, bench.MiB(r.sidecarIdle.RSS), bench.MiB(r.floorIdle.RSS),
		ratio(r.sidecarIdle.RSS, r.floorIdle.RSS), mark(okRSS(r.sidecarIdle, r.floorIdle)))
	w("| of which anonymous (heap, stacks) / file (binary) | %s / %s | %s / %s | | |\n",
		bench.MiB(r.sidecarIdle.Anon), bench.MiB(r.sidecarIdle.File), bench.MiB(r.floorIdle.Anon), bench.MiB(r.floorIdle.File))
	w("| RSS after %s calls (%d connections, then closed; Explain vs Health/Check), %s later | %s | %s | %.2fx | %s |\n", bench.Thousands(p.calls), p.loadConns, p.settle,
		bench.MiB(r.sidecarLd.RSS), bench.MiB(r.floorLd.RSS), ratio(r.sidecarLd.RSS, r.floorLd.RSS), mark(okRSS(r.sidecarLd, r.floorLd)))
	w("| of which anonymous (heap, stacks) / file (binary) | %s / %s | %s / %s | | |\n",
		bench.MiB(r.sidecarLd.Anon), bench.MiB(r.sidecarLd.File), bench.MiB(r.floorLd.Anon), bench.MiB(r.floorLd.File))
	w("| peak RSS (VmHWM) by then | %s | %s | %.2fx | |\n", bench.MiB(r.sidecarLd.HWM), bench.MiB(r.floorLd.HWM), ratio(r.sidecarLd.HWM, r.floorLd.HWM))
	w("| sidecar after the latency runs below: RSS / peak | %s / %s | | | |\n\n", bench.MiB(r.sidecarPeak.RSS), bench.MiB(r.sidecarPeak.HWM))

	w("**Latency** (%d mTLS connections, each making %d calls one after another; handshakes done beforehand)\n\n", p.latConns, p.perConn)
	w("| call | p50 | p99 | max | throughput |\n|---|---:|---:|---:|---:|\n")
	row := func(name string, s bench.Summary) {
		w("| %s | %s | %s | %s | %.0f calls/s |\n", name, ms(s.P50), ms(s.P99), ms(s.Max), s.Throughput())
	}
	row("Explain, sidecar", r.explain)
	row("Health/Check, sidecar (anchor)", r.health)
	row("Health/Check, floor", r.floor)
	w("| Explain / Health on the sidecar | %.0fx | %.0fx | | |\n\n",
		float64(r.explain.P50)/float64(r.health.P50), float64(r.explain.P99)/float64(r.health.P99))
	w("In a closed loop a server that is CPU-bound queues the calls: p50 is about connections / throughput, here %d / %.0f calls/s = %s for Explain, ",
		p.latConns, r.explain.Throughput(), ms(time.Duration(float64(p.latConns)/r.explain.Throughput()*float64(time.Second))))
	w("whose service time is about %s of wall time (this machine's %d CPUs shared with the client).\n\n",
		ms(time.Duration(float64(time.Second)/r.explain.Throughput())), runtime.NumCPU())

	idleOK, loadOK := okRSS(r.sidecarIdle, r.floorIdle), okRSS(r.sidecarLd, r.floorLd)
	w("Goals: ")
	switch {
	case idleOK && loadOK:
		w("met: the sidecar's RSS is within %.1fx of the floor and under %d MiB, idle and after %s calls.", goalRatio, goalRSS>>20, bench.Thousands(p.calls))
	default:
		var miss []string
		for _, c := range []struct {
			when     string
			m, floor bench.Memory
		}{{"idle", r.sidecarIdle, r.floorIdle}, {"after " + bench.Thousands(p.calls) + " calls", r.sidecarLd, r.floorLd}} {
			if x := ratio(c.m.RSS, c.floor.RSS); x > goalRatio {
				miss = append(miss, fmt.Sprintf("%s %.2fx the floor (goal %.1fx)", c.when, x, goalRatio))
			}
			if c.m.RSS > goalRSS {
				miss = append(miss, fmt.Sprintf("%s %s (goal < %d MiB)", c.when, bench.MiB(c.m.RSS), goalRSS>>20))
			}
		}
		w("**not met**: %s.", strings.Join(miss, "; "))
	}
	if r.auditLines > 0 {
		w(" The sidecar's audit log took %s for %s records (%d bytes a record).", bench.MiB(r.auditBytes), bench.Thousands(int(r.auditLines)), r.auditBytes/r.auditLines)
	}
	w("\n")
	return b.String()
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// writeReadme puts table between the README's markers, or warns.
func writeReadme(path, table string) {
	if err := bench.RewriteFile(path, func(doc string) (string, error) { return bench.ReplaceBetweenMarkers(doc, table) }); err != nil {
		progress("warning: %v; README not updated", err)
		return
	}
	progress("wrote the table into %s", path)
}
