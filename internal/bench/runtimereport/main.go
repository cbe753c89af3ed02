// Command runtimereport is the runtime half of `make bench`: what the Go
// runtime diagnostics cost (issue 3's "Done when"). In one run it measures:
//
//  1. a goroutine dump of ../goroutineapp with -n (100,000) goroutines parked
//     in four wait states at depths 5 to 20, end to end (goroutineapp's agent
//     -> triage-sidecar --dev --agent-socket -> `triage goroutines -o json`,
//     the whole command timed) on the profile path (the default) and on
//     --path text, beside in-process anchors the target measures itself in
//     the same run: pprof.Lookup("goroutine").WriteTo(w, 2), what gops
//     `stack` does, and runtime.GoroutineProfile; pauses come from the
//     target's runtime/metrics stop-the-world histogram, with a 1 ms
//     sleeper's largest gap as a proxy beside them (see goroutineapp);
//  2. wall-clock profiling overhead, in this process: throughput of two
//     CPU-bound workers (one per GOMAXPROCS) beside 1,000, 10,000 and
//     100,000 idle goroutines with no profiler, plain fgprof (99 Hz) and the
//     agent's wall profile asked for over gRPC, as the sidecar would, with
//     the notes the agent put in the profile's trailer;
//  3. the agent's idle cost in an app: RSS and CPU of the agent's testapp
//     idle without the agent, with it, and with the execution-trace flight
//     recorder on.
//
// The result is markdown on stdout, also written into -readme between
// <!-- bench-runtime:start --> and <!-- bench-runtime:end --> (the pair is
// added after the main bench table when missing).
//
//	go run ./internal/bench/runtimereport -readme README.md -sidecar bin/triage-sidecar -cli bin/triage
//
// Binaries not given are built into a temporary directory.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/triage-sh/triage/internal/bench"
)

type params struct {
	readme                  string
	sidecar, cli, app, idle string // binaries
	n, rounds               int
	wallD                   time.Duration
	wallRounds              int
	settle, idleFor         time.Duration
	copies                  int
	skip                    string
}

func main() {
	var p params
	flag.StringVar(&p.readme, "readme", "", "README to write the tables into, between the bench-runtime markers (empty: stdout only)")
	flag.StringVar(&p.sidecar, "sidecar", "", "triage-sidecar binary (empty: go build it)")
	flag.StringVar(&p.cli, "cli", "", "triage binary (empty: go build it)")
	flag.StringVar(&p.app, "app", "", "goroutineapp binary (empty: go build it)")
	flag.StringVar(&p.idle, "testapp", "", "the agent's testapp binary (empty: go build it)")
	flag.IntVar(&p.n, "n", 100_000, "goroutines parked in the dump target")
	flag.IntVar(&p.rounds, "rounds", 3, "repetitions of each dump measurement (median time, worst pause)")
	flag.DurationVar(&p.wallD, "wall-duration", 3*time.Second, "throughput window of each wall-overhead cell")
	flag.IntVar(&p.wallRounds, "wall-rounds", 3, "interleaved repetitions of each wall-overhead cell (median)")
	flag.DurationVar(&p.settle, "settle", 2*time.Second, "idle cost: wait after ready before measuring")
	flag.DurationVar(&p.idleFor, "idle", 5*time.Second, "idle cost: CPU measured over this long")
	flag.IntVar(&p.copies, "copies", 3, "idle cost: processes of each kind, run at once (median)")
	flag.StringVar(&p.skip, "skip", "", "sections to leave out, comma-separated: dump,wall,idle (for trying things; the README is then not written)")
	flag.Parse()
	if err := run(p); err != nil {
		fmt.Fprintln(os.Stderr, "runtimereport:", err)
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-runtime: "+format+"\n", args...)
}

func run(p params) error {
	start := time.Now().UTC()
	tmp, err := os.MkdirTemp("", "triage-bench-runtime-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, b := range []struct {
		dst *string
		pkg string
	}{
		{&p.sidecar, "./cmd/triage-sidecar"},
		{&p.cli, "./cmd/triage"},
		{&p.app, "./internal/bench/goroutineapp"},
		{&p.idle, "./sidecar/agent/internal/testapp"},
	} {
		if *b.dst == "" {
			if *b.dst, err = build(tmp, b.pkg); err != nil {
				return err
			}
		}
	}
	skip := func(s string) bool { return strings.Contains(","+p.skip+",", ","+s+",") }

	var r result
	if !skip("idle") { // first, while the machine is quiet
		progress("idle cost: %d copies each of testapp without the agent, with it, and with the flight recorder, %s + %s", p.copies, p.settle, p.idleFor)
		if r.idle, err = measureIdle(p, tmp); err != nil {
			return fmt.Errorf("idle cost: %w", err)
		}
	}
	if !skip("dump") {
		if r.dump, err = measureDump(p, tmp); err != nil {
			return fmt.Errorf("goroutine dump: %w", err)
		}
	}
	if !skip("wall") {
		if r.wall, err = measureWall(p, tmp); err != nil {
			return fmt.Errorf("wall overhead: %w", err)
		}
	}
	r.took = time.Since(start)
	table := render(p, r, start, skip)
	fmt.Print(table)
	if p.readme != "" && p.skip == "" {
		writeReadme(p.readme, table)
	}
	return nil
}

type result struct {
	idle []idleRow
	dump dumpResult
	wall []wallRow
	took time.Duration
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

// child is a process run by the report, talking on stdin/stdout lines.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Scanner
	log    string
	exited chan struct{}
	once   sync.Once
}

// startChild starts bin, its stderr to a file in tmp, and waits for its
// stdout line "ready" (up to wait).
func startChild(name, tmp string, env []string, wait time.Duration, bin string, args ...string) (*child, error) {
	c := &child{name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{}), log: filepath.Join(tmp, name+".log")}
	c.cmd.Env = append(os.Environ(), env...)
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.out = bufio.NewScanner(stdout)
	c.out.Buffer(nil, 1<<20)
	f, err := os.Create(c.log)
	if err != nil {
		return nil, err
	}
	c.cmd.Stderr = f
	err = c.cmd.Start()
	f.Close()
	if err != nil {
		return nil, err
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	ready := make(chan error, 1)
	go func() {
		for c.out.Scan() {
			if c.out.Text() == "ready" {
				ready <- nil
				return
			}
		}
		ready <- errors.New("exited before ready")
	}()
	select {
	case err = <-ready:
	case <-time.After(wait):
		err = fmt.Errorf("not ready within %s", wait)
	}
	if err != nil {
		c.stop()
		return nil, c.failure(err)
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// ask sends one command line and returns the reply line.
func (c *child) ask(cmd string) (string, error) {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return "", c.failure(err)
	}
	if !c.out.Scan() {
		return "", c.failure(fmt.Errorf("no reply to %q", cmd))
	}
	return c.out.Text(), nil
}

// stop closes stdin (the children exit on EOF), then SIGKILL after 5 s.
func (c *child) stop() {
	c.once.Do(func() {
		_ = c.stdin.Close()
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Signal(syscall.SIGKILL)
			<-c.exited
		}
	})
}

func (c *child) failure(err error) error {
	b, _ := os.ReadFile(c.log)
	tail := strings.TrimSpace(string(b))
	if len(tail) > 2000 {
		tail = "..." + tail[len(tail)-2000:]
	}
	return fmt.Errorf("%s: %w\n%s", c.name, err, tail)
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
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	return fmt.Sprintf("%s, %d CPUs, GOMAXPROCS %d, %s, load average %s at the start", cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), load)
}

// writeReadme puts table into the README's runtime section, or warns.
func writeReadme(path, table string) {
	if err := bench.RewriteFile(path, func(doc string) (string, error) { return bench.UpsertRuntimeSection(doc, table) }); err != nil {
		progress("warning: %v; README not updated", err)
		return
	}
	progress("wrote the runtime tables into %s", path)
}
