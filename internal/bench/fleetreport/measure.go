//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/google/pprof/profile"

	clientfleet "github.com/triage-sh/triage/client/fleet"
	"github.com/triage-sh/triage/internal/bench"
)

// cliRun is one run of the triage CLI.
type cliRun struct {
	Wall     time.Duration
	MaxRSS   int64 // bytes: the child's peak resident set (VmHWM, sampled)
	ExitCode int
	Stdout   []byte
	Stderr   []byte
	// Pods is how many pods answered: goroutine totals in the JSON, or
	// distinct pod labels in the merged profile.
	Pods int
	// Profile is the written profile's check (profile runs only).
	Profile *profileCheck
}

// hwmInterval is how often runCLI samples the CLI's peak RSS.
const hwmInterval = 10 * time.Millisecond

// runCLI runs the CLI to completion and measures it. The error is for a
// CLI that could not be started; an unsuccessful exit is in ExitCode.
//
// The peak RSS is the child's VmHWM, sampled every hwmInterval until it
// exits (the kernel's high-water mark only grows, so only growth in the
// last interval can be missed). wait4's ru_maxrss would be wrong here: Go
// starts children with vfork semantics, and Linux folds the parent's
// high-water mark, this process's with a client-go and a hundred sidecars'
// bookkeeping, into the child's at exec.
func runCLI(ctx context.Context, cli string, args ...string) (cliRun, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return cliRun{}, fmt.Errorf("running %s: %w", cli, err)
	}
	done := make(chan struct{})
	hwm := make(chan int64, 1)
	go func() {
		var peak int64
		tick := time.NewTicker(hwmInterval)
		defer tick.Stop()
		for {
			// An exited, unreaped child has no Vm fields: the error is
			// the end, not a failure.
			if m, err := bench.ReadMemory(cmd.Process.Pid); err == nil {
				peak = max(peak, m.HWM)
			}
			select {
			case <-done:
				hwm <- peak
				return
			case <-tick.C:
			}
		}
	}()
	err := cmd.Wait()
	r := cliRun{Wall: time.Since(t0), Stdout: out.Bytes(), Stderr: errb.Bytes()}
	close(done)
	r.MaxRSS = <-hwm
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if cmd.ProcessState == nil {
		return r, fmt.Errorf("running %s: %w", cli, err)
	}
	r.ExitCode = cmd.ProcessState.ExitCode()
	return r, nil
}

// describe is a failed run's exit status and stderr, for errors.
func (r cliRun) describe() string {
	return fmt.Sprintf("exit status %d after %s: %s", r.ExitCode, r.Wall.Round(time.Millisecond), tail(string(r.Stderr), 8))
}

// goroutinePods returns the pods that answered in the CLI's
// `goroutines -o json` output: the pod of every per-pod total
// (fleet.GoroutineReport's "totals"), found at the top level or one object
// down (an envelope around the report). A single pod's dump has no totals:
// it counts as one pod when it is a JSON object at all.
func goroutinePods(b []byte) ([]string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("goroutines -o json output is not a JSON object: %w", err)
	}
	pods, found, err := totalsPods(top)
	if err != nil || found {
		return pods, err
	}
	for _, v := range top {
		var inner map[string]json.RawMessage
		if json.Unmarshal(v, &inner) != nil {
			continue
		}
		if pods, found, err := totalsPods(inner); err != nil || found {
			return pods, err
		}
	}
	return nil, errors.New(`goroutines -o json output has no "totals" (one entry per pod that answered)`)
}

// totalsPods reads obj["totals"], the distinct non-empty pods in it.
func totalsPods(obj map[string]json.RawMessage) (pods []string, found bool, err error) {
	raw, ok := obj["totals"]
	if !ok {
		return nil, false, nil
	}
	var totals []clientfleet.PodTotal
	if err := json.Unmarshal(raw, &totals); err != nil {
		return nil, true, fmt.Errorf(`goroutines -o json: "totals" is not a list of per-pod totals: %w`, err)
	}
	for _, t := range totals {
		if t.Pod != "" && !slices.Contains(pods, t.Pod) {
			pods = append(pods, t.Pod)
		}
	}
	return pods, true, nil
}

// profileCheck is what a merged profile holds.
type profileCheck struct {
	Valid       error    // CheckValid's verdict (nil: valid)
	Samples     int      // samples in all
	Labelled    int      // samples with a pod label
	Pods        []string // distinct pod labels, sorted
	SampleTypes []string // type/unit
	Bytes       int64    // file size
}

// checkProfile parses the profile at path and checks it.
func checkProfile(path string) (profileCheck, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return profileCheck{}, fmt.Errorf("reading the profile the CLI wrote: %w", err)
	}
	p, err := profile.ParseData(b)
	if err != nil {
		return profileCheck{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	return inspectProfile(p, int64(len(b))), nil
}

// inspectProfile checks p and counts its samples and pods.
func inspectProfile(p *profile.Profile, size int64) profileCheck {
	c := profileCheck{Valid: p.CheckValid(), Samples: len(p.Sample), Bytes: size}
	for _, st := range p.SampleType {
		c.SampleTypes = append(c.SampleTypes, st.Type+"/"+st.Unit)
	}
	for _, s := range p.Sample {
		pods := s.Label[clientfleet.PodLabel]
		if len(pods) == 0 {
			continue
		}
		c.Labelled++
		for _, pod := range pods {
			if !slices.Contains(c.Pods, pod) {
				c.Pods = append(c.Pods, pod)
			}
		}
	}
	slices.Sort(c.Pods)
	return c
}

// measurement is one command measured for a single pod and the workload.
type measurement struct {
	Name          string // for the table's first column
	Single, Fleet []cliRun
}

// plan says how often each command runs.
type plan struct {
	pods, concurrency         int
	duration                  time.Duration
	goroutineRuns, singleRuns int
	profileRuns               int
}

// measure runs the CLI against pod/shop-0 and deploy/shop, side by side.
func measure(ctx context.Context, f *fleet, cli string, p plan) (cold cliRun, ms []measurement, err error) {
	base := []string{"--kubeconfig", f.kubeconfig, "-n", namespace, "--concurrency", strconv.Itoa(p.concurrency)}
	single, deploy := "pod/"+podName(0), "deploy/"+workload

	// The first call: every sidecar fetches the cluster's keys to verify
	// its first token. Reported on its own, not in the medians.
	progress("goroutines %s, first call (cold sidecars)", deploy)
	if cold, err = fleetRun(ctx, cli, p.pods, append([]string{"goroutines", deploy, "-o", "json"}, base...), ""); err != nil {
		return cold, nil, err
	}

	g := measurement{Name: "goroutines (`-o json`)"}
	for i := range p.goroutineRuns {
		progress("goroutines: run %d of %d", i+1, p.goroutineRuns)
		r, err := singleRun(ctx, cli, append([]string{"goroutines", single, "-o", "json"}, base...), "")
		if err != nil {
			return cold, nil, err
		}
		g.Single = append(g.Single, r)
		if r, err = fleetRun(ctx, cli, p.pods, append([]string{"goroutines", deploy, "-o", "json"}, base...), ""); err != nil {
			return cold, nil, err
		}
		g.Fleet = append(g.Fleet, r)
	}

	wall := measurement{Name: fmt.Sprintf("wall profile, `--duration %s`", p.duration)}
	prof := func(target, file string) []string {
		return append([]string{"profile", target, "--type", "wall", "--duration", p.duration.String(), "-w", file}, base...)
	}
	for i := range max(p.singleRuns, p.profileRuns) {
		progress("wall profile %s: run %d of %d", p.duration, i+1, max(p.singleRuns, p.profileRuns))
		if i < p.singleRuns {
			file := filepath.Join(f.dir, "single.pb.gz")
			r, err := singleRun(ctx, cli, prof(single, file), file)
			if err != nil {
				return cold, nil, err
			}
			wall.Single = append(wall.Single, r)
		}
		if i < p.profileRuns {
			file := filepath.Join(f.dir, fmt.Sprintf("merged-%d.pb.gz", i))
			r, err := fleetRun(ctx, cli, p.pods, prof(deploy, file), file)
			if err != nil {
				return cold, nil, err
			}
			wall.Fleet = append(wall.Fleet, r)
		}
	}
	return cold, []measurement{g, wall}, nil
}

// singleRun runs a command on one pod. Its answer must be complete: the
// JSON on stdout or, when profilePath is set, a valid profile written there.
// The exit status is recorded, not required to be 0, so a CLI that answers
// and then fails to close cleanly is measured and the report shows it.
func singleRun(ctx context.Context, cli string, args []string, profilePath string) (cliRun, error) {
	r, err := runCLI(ctx, cli, args...)
	if err != nil {
		return r, err
	}
	if profilePath != "" {
		c, err := checkProfile(profilePath)
		if err == nil && c.Valid != nil {
			err = c.Valid
		}
		if err != nil {
			return r, fmt.Errorf("triage %s %s: %w (the CLI: %s)", args[0], args[1], err, r.describe())
		}
		r.Profile = &c
		_ = os.Remove(profilePath)
	} else if err := singleDump(r.Stdout); err != nil {
		return r, fmt.Errorf("triage %s %s: %w (the CLI: %s)", args[0], args[1], err, r.describe())
	}
	r.Pods = 1
	return r, nil
}

// singleDump checks a single pod's `goroutines -o json`: an object with a
// positive "total".
func singleDump(b []byte) error {
	var d struct {
		Total *int64 `json:"total"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("goroutines -o json output is not a JSON object: %w", err)
	}
	if d.Total == nil || *d.Total <= 0 {
		return errors.New(`goroutines -o json output has no positive "total"`)
	}
	return nil
}

// fleetRun runs a command on the workload and counts the pods that
// answered, from the JSON on stdout or, when profile is set, the merged
// profile written there. A run where some pods failed is a result (the CLI
// may exit non-zero for it); a run without a usable answer is an error.
func fleetRun(ctx context.Context, cli string, pods int, args []string, profilePath string) (cliRun, error) {
	r, err := runCLI(ctx, cli, args...)
	if err != nil {
		return r, err
	}
	if r.ExitCode != 0 && len(r.Stdout) == 0 && profilePath == "" {
		return r, fmt.Errorf("triage %s %s answered nothing: %s", args[0], args[1], r.describe())
	}
	if profilePath != "" {
		c, err := checkProfile(profilePath)
		if err != nil {
			return r, fmt.Errorf("triage %s %s: %w (the CLI: %s)", args[0], args[1], err, r.describe())
		}
		r.Profile, r.Pods = &c, len(c.Pods)
		_ = os.Remove(profilePath)
	} else {
		names, err := goroutinePods(r.Stdout)
		if err != nil {
			return r, fmt.Errorf("triage %s %s: %w (the CLI: %s)", args[0], args[1], err, r.describe())
		}
		r.Pods = len(names)
	}
	if r.Pods == 0 {
		return r, fmt.Errorf("triage %s %s: no pod answered of %d: %s", args[0], args[1], pods, r.describe())
	}
	return r, nil
}
