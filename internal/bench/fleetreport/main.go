//go:build linux

// Command fleetreport is the fleet part of `make bench`: what fanning a
// command out over a workload's pods through the API server costs against
// the same command on one pod (the goal: at --concurrency 10, 100
// pods take at most the single-pod time + 2 s).
//
// It starts a real control plane (internal/kubetest/cluster: etcd,
// kube-apiserver, one fake kubelet serving port-forward), Deployment shop
// with -pods running pods and one real triage-sidecar process per pod
// (--kube-auth=jwks, plaintext on loopback, exposed through the kubelet),
// and gives user alice the RBAC of deploy/base/access.yaml. Then it runs the
// real CLI binary, side by side:
//
//   - `triage goroutines pod/shop-0 -o json` and `deploy/shop`: wall time,
//     median of -runs;
//   - `triage profile --type wall --duration D -w FILE` on pod/shop-0
//     (median of -runs) and deploy/shop (median of -profile-runs), the
//     merged profile parsed and checked (valid, samples labelled by pod,
//     distinct pods);
//   - the CLI's peak RSS (VmHWM, sampled) and how many pods answered.
//
// The result is markdown on stdout, also written into -readme between
// <!-- bench-fleet:start --> and <!-- bench-fleet:end -->. Every process
// and the control plane are stopped on return, error or Ctrl-C.
//
//	go run ./internal/bench/fleetreport -readme README.md -sidecar bin/triage-sidecar -cli bin/triage
//
// Binaries not given are built into a temporary directory. The control
// plane's binaries come from scripts/kube-control-plane.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/triage-sh/triage/internal/bench"
	"github.com/triage-sh/triage/internal/kubetest/cluster"
)

const (
	markerStart = "<!-- bench-fleet:start -->"
	markerEnd   = "<!-- bench-fleet:end -->"
	// markerAfter is the section the fleet's follows when the README has
	// no markers yet.
	markerAfter = "<!-- bench-injector:end -->"
)

// config is the command line.
type config struct {
	readme, sidecar, cli string
	plan                 plan
}

func main() {
	var c config
	flag.StringVar(&c.readme, "readme", "", "README to write the section into, between the bench-fleet markers (empty: stdout only)")
	flag.StringVar(&c.sidecar, "sidecar", "", "triage-sidecar binary (empty: go build it)")
	flag.StringVar(&c.cli, "cli", "", "triage binary (empty: go build it)")
	flag.IntVar(&c.plan.pods, "pods", 100, "pods in Deployment shop, one triage-sidecar process each")
	flag.IntVar(&c.plan.concurrency, "concurrency", 10, "the CLI's --concurrency for deploy/shop")
	flag.DurationVar(&c.plan.duration, "duration", 5*time.Second, "wall profile --duration")
	flag.IntVar(&c.plan.goroutineRuns, "runs", 3, "runs of goroutines, single pod and all pods (median)")
	flag.IntVar(&c.plan.singleRuns, "single-profile-runs", 3, "runs of the single-pod wall profile (median)")
	flag.IntVar(&c.plan.profileRuns, "profile-runs", 2, "runs of the all-pods wall profile (median)")
	flag.Parse()
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetreport:", err)
		os.Exit(2)
	}
	quietKlog()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted (the sidecars and the control plane were stopped): %w", err)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetreport:", err)
		os.Exit(1)
	}
}

// quietKlog silences klog: the fake kubelet's port-forward code (in this
// process) logs every forwarded connection that ends with an error there.
// The report counts them from Kubelet.Errors instead.
func quietKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
}

func (c config) validate() error {
	p := c.plan
	switch {
	case p.pods < 1:
		return errors.New("-pods must be at least 1")
	case p.concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	case p.duration < time.Second:
		return errors.New("-duration must be at least 1s")
	case p.goroutineRuns < 1 || p.singleRuns < 1 || p.profileRuns < 1:
		return errors.New("-runs, -single-profile-runs and -profile-runs must be at least 1")
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-fleet: "+format+"\n", args...)
}

// run measures, prints the section and writes it into the README.
func run(ctx context.Context, c config) error {
	tmp, err := os.MkdirTemp("", "triage-bench-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	command := c.command()
	for _, b := range []struct {
		dst *string
		pkg string
	}{{&c.sidecar, "./cmd/triage-sidecar"}, {&c.cli, "./cmd/triage"}} {
		if *b.dst == "" {
			if *b.dst, err = build(ctx, tmp, b.pkg); err != nil {
				return err
			}
		}
	}
	r, err := execute(ctx, c, command)
	if err != nil {
		return err
	}
	body := render(r)
	fmt.Print(body)
	if c.readme == "" {
		return nil
	}
	return bench.RewriteFile(c.readme, func(doc string) (string, error) {
		return bench.UpsertSection(doc, markerStart, markerEnd, body, markerAfter)
	})
}

// execute is the measurement: the fleet up, the CLI runs, the fleet down;
// command is the command line that reproduces it, for the report.
func execute(ctx context.Context, c config, command string) (report, error) {
	r := report{Start: time.Now(), Plan: c.plan, Machine: thisMachine(), KubeVersion: cluster.KubeVersion, Command: command}
	if _, _, why := cluster.FindBinaries(); why != "" {
		return r, errors.New(why)
	}
	for _, bin := range []string{c.sidecar, c.cli} {
		if _, err := os.Stat(bin); err != nil {
			return r, fmt.Errorf("%w: run make build (or leave -sidecar/-cli empty to build them)", err)
		}
	}
	f, err := startFleet(ctx, c.sidecar, c.plan.pods)
	if err != nil {
		return r, err
	}
	defer func() {
		progress("stopping %d sidecars and the control plane", len(f.sidecars))
		f.Close()
	}()
	r.Setup = f.setup
	if r.Cold, r.Rows, err = measure(ctx, f, c.cli, c.plan); err != nil {
		return r, err
	}
	// After the runs: the sidecars' memory once each has served calls.
	if r.SidecarRSS, err = f.sidecarRSS(); err != nil {
		return r, err
	}
	r.KubeletStreams, r.KubeletErrors = f.kubelet.Streams(), f.kubelet.Errors()
	r.Took = time.Since(r.Start)
	return r, nil
}

// command is the command line that reproduces the report, before build
// fills in the binaries.
func (c config) command() string {
	s := "go run ./internal/bench/fleetreport"
	if c.readme != "" {
		s += " -readme " + c.readme
	}
	if c.sidecar != "" {
		s += " -sidecar " + c.sidecar
	}
	if c.cli != "" {
		s += " -cli " + c.cli
	}
	return s + fmt.Sprintf(" -pods %d -concurrency %d -duration %s", c.plan.pods, c.plan.concurrency, c.plan.duration)
}

// thisMachine describes this machine.
func thisMachine() machine {
	m := machine{Go: runtime.Version(), CPUs: runtime.NumCPU(), CPU: "unknown CPU"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		var n int
		if m.CPU, n = parseCPUInfo(string(b)); n > 0 {
			m.CPUs = n
		}
	}
	return m
}

// build builds pkg (relative to the module root, the working directory of
// `make bench`) into dir.
func build(ctx context.Context, dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	progress("go build %s", pkg)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s (run from the module root): %w", pkg, err)
	}
	return out, nil
}
