//go:build linux

package main

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/triage-sh/triage/internal/bench"
)

// goalSlack is the goal: the fan-out over every pod at the default
// concurrency takes at most this much longer than the same command on one
// pod.
const goalSlack = 2 * time.Second

// machine describes where the report ran.
type machine struct {
	CPU  string // model name
	CPUs int    // logical CPUs
	Go   string // runtime.Version()
}

// parseCPUInfo reads the first model name and the number of processors out
// of /proc/cpuinfo. Architectures without "model name" (arm64 has none)
// yield "unknown CPU".
func parseCPUInfo(s string) (model string, cpus int) {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "processor":
			cpus++
		case "model name":
			if model == "" {
				model = strings.Join(strings.Fields(val), " ")
			}
		}
	}
	if model == "" {
		model = "unknown CPU"
	}
	return model, cpus
}

// report is everything the section shows.
type report struct {
	Start       time.Time
	Took        time.Duration
	Machine     machine
	Plan        plan
	Setup       time.Duration
	SidecarRSS  int64
	Cold        cliRun
	Rows        []measurement
	Command     string
	KubeVersion string
	// KubeletStreams and KubeletErrors are the fake kubelet's forwarded
	// connections and the errors it reported on them (the last 100).
	KubeletStreams int64
	KubeletErrors  []error
}

// size formats a file size in KiB or, from 1 MiB, MiB.
func size(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return bench.MiB(n)
}

// seconds formats d as seconds with two decimals.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// walls lists the runs' wall times, and returns their median.
func walls(runs []cliRun) (median time.Duration, list string) {
	ns := make([]int64, len(runs))
	s := make([]string, len(runs))
	for i, r := range runs {
		ns[i] = int64(r.Wall)
		s[i] = fmt.Sprintf("%.2f", r.Wall.Seconds())
	}
	return time.Duration(bench.Median(ns)), strings.Join(s, ", ")
}

// answered is the fewest pods that answered in any run.
func answered(runs []cliRun) int {
	if len(runs) == 0 {
		return 0
	}
	return slices.MinFunc(runs, func(a, b cliRun) int { return a.Pods - b.Pods }).Pods
}

// peakRSS is the largest peak RSS over runs.
func peakRSS(runs []cliRun) int64 {
	var m int64
	for _, r := range runs {
		m = max(m, r.MaxRSS)
	}
	return m
}

// exitCodes lists the distinct exit statuses of runs.
func exitCodes(runs []cliRun) string {
	var codes []string
	for _, r := range runs {
		c := fmt.Sprint(r.ExitCode)
		if !slices.Contains(codes, c) {
			codes = append(codes, c)
		}
	}
	return strings.Join(codes, ", ")
}

// render is the README section.
func render(r report) string {
	var b strings.Builder
	p := r.Plan
	fmt.Fprintf(&b, "Fan-out over a Deployment's pods through the API server, measured with `make bench` (`go run ./internal/bench/fleetreport`) on %s: %s, %d CPUs, %s. The section took %s.\n\n",
		r.Start.UTC().Format("2006-01-02 15:04 UTC"), r.Machine.CPU, r.Machine.CPUs, r.Machine.Go, r.Took.Round(time.Second))
	fmt.Fprintf(&b, "A real kube-apiserver %s and etcd, one fake kubelet serving port-forward with the kubelet's own code, Deployment `shop` with %d running pods, each served by its own `triage-sidecar` process (`--kube-auth=jwks`, plaintext on loopback); "+
		"the CLI binary runs as a user with the `triage-user` permissions, mints tier tokens with TokenRequest and reaches every sidecar through the API server's port-forward. "+
		"*single pod*: `pod/%s`; *%d pods*: `deploy/%s` at `--concurrency %d`. Wall time of the whole CLI process, median of the runs in parentheses (seconds; the upper middle of two).\n\n",
		r.KubeVersion, p.pods, podName(0), p.pods, workload, p.concurrency)
	fmt.Fprintf(&b, "| what | single pod | %d pods | overhead | goal | met? |\n|---|---:|---:|---:|---|---|\n", p.pods)
	for _, m := range r.Rows {
		one, oneList := walls(m.Single)
		all, allList := walls(m.Fleet)
		over := all - one
		met := bench.Met(over <= goalSlack)
		if n := answered(m.Fleet); n < p.pods {
			met = fmt.Sprintf("**not met**: only %d of %d pods answered in a run", n, p.pods)
		}
		fmt.Fprintf(&b, "| %s | %s (%s) | %s (%s) | %+.2f s | %d pods ≤ single + %s | %s |\n",
			m.Name, seconds(one), oneList, seconds(all), allList, over.Seconds(), p.pods, goalSlack, met)
	}
	b.WriteString("\n")
	for _, m := range r.Rows {
		fmt.Fprintf(&b, "- %s, %d pods: %d of %d pods answered in the worst run; the CLI's peak RSS (VmHWM) %s (single pod: %s); exit status %s (single pod: %s).\n",
			m.Name, p.pods, answered(m.Fleet), p.pods, bench.MiB(peakRSS(m.Fleet)), bench.MiB(peakRSS(m.Single)), exitCodes(m.Fleet), exitCodes(m.Single))
	}
	for _, m := range r.Rows {
		for j, run := range m.Fleet {
			if run.Profile == nil {
				continue
			}
			c := run.Profile
			valid := "valid (`CheckValid`)"
			if c.Valid != nil {
				valid = fmt.Sprintf("**invalid**: %v", c.Valid)
			}
			fmt.Fprintf(&b, "- merged profile, run %d: %s, %s, sample types %s; %d samples, %d with a `pod` label, %d distinct pods (goal %d: %s).\n",
				j+1, valid, size(c.Bytes), strings.Join(c.SampleTypes, ", "), c.Samples, c.Labelled, len(c.Pods), p.pods, bench.Met(len(c.Pods) == p.pods && c.Valid == nil))
		}
	}
	fmt.Fprintf(&b, "- first call on cold sidecars (each fetches the cluster's keys to verify its first token), goroutines of %d pods: %s, %d pods answered; not in the medians.\n",
		p.pods, seconds(r.Cold.Wall), r.Cold.Pods)
	fmt.Fprintf(&b, "- setup: control plane, %d pods and %d sidecars healthy in %s; the sidecars' RSS together %s (%s each).\n",
		p.pods, p.pods, r.Setup.Round(100*time.Millisecond), bench.MiB(r.SidecarRSS), bench.MiB(r.SidecarRSS/int64(max(p.pods, 1))))
	fmt.Fprintf(&b, "- the fake kubelet forwarded %d connections", r.KubeletStreams)
	if n := len(r.KubeletErrors); n > 0 {
		fmt.Fprintf(&b, "; %d of them (it keeps the last 100) ended with an error on its side, the latest: `%s`", n, strings.ReplaceAll(r.KubeletErrors[n-1].Error(), "`", "'"))
	}
	b.WriteString(".\n")
	fmt.Fprintf(&b, "\nReproduce: `%s`\n", r.Command)
	return b.String()
}
