//go:build linux

package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	clientfleet "github.com/triage-sh/triage/client/fleet"
	"github.com/triage-sh/triage/internal/kubetest/cluster"
)

func TestGoroutinePods(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{name: "report", in: `{"pods":2,"totals":[{"pod":"shop/shop-0","total":20},{"pod":"shop/shop-1","total":20}],"groups":[]}`, want: []string{"shop/shop-0", "shop/shop-1"}},
		{name: "envelope", in: `{"report":{"totals":[{"pod":"a"}]},"failed":[]}`, want: []string{"a"}},
		{name: "duplicates and empty pods", in: `{"totals":[{"pod":"a"},{"pod":""},{"pod":"a"},{"pod":"b"}]}`, want: []string{"a", "b"}},
		{name: "no pod answered", in: `{"totals":[]}`, want: nil},
		{name: "single pod dump", in: `{"total":20,"groups":[]}`, err: `no "totals"`},
		{name: "not JSON", in: `triage: no pod answered`, err: "not a JSON object"},
		{name: "empty output", in: ``, err: "not a JSON object"},
		{name: "totals not a list", in: `{"totals":{"pod":"a"}}`, err: "not a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := goroutinePods([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("pods = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSingleDump(t *testing.T) {
	for in, ok := range map[string]bool{
		`{"total":20,"groups":[]}`: true,
		`{"total":0}`:              false,
		`{"groups":[]}`:            false,
		`[]`:                       false,
		``:                         false,
	} {
		if err := singleDump([]byte(in)); (err == nil) != ok {
			t.Errorf("singleDump(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestParseCPUInfo(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		model    string
		cpus     int
	}{
		{name: "x86", in: "processor\t: 0\nmodel name\t: AMD  EPYC 7B13\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD  EPYC 7B13\n", model: "AMD EPYC 7B13", cpus: 2},
		{name: "arm64 has no model name", in: "processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\n", model: "unknown CPU", cpus: 2},
		{name: "empty", in: "", model: "unknown CPU", cpus: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model, cpus := parseCPUInfo(tc.in)
			if model != tc.model || cpus != tc.cpus {
				t.Errorf("parseCPUInfo = %q, %d; want %q, %d", model, cpus, tc.model, tc.cpus)
			}
		})
	}
}

// testProfile is a valid wall profile with samples of pods, and one
// unlabelled sample.
func testProfile(pods ...string) *profile.Profile {
	fn := &profile.Function{ID: 1, Name: "main.work"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn, Line: 3}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "time", Unit: "nanoseconds"}},
		Function:   []*profile.Function{fn},
		Location:   []*profile.Location{loc},
		Sample:     []*profile.Sample{{Location: []*profile.Location{loc}, Value: []int64{1, 10}}},
	}
	for _, pod := range pods {
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc}, Value: []int64{1, 10}, Label: map[string][]string{clientfleet.PodLabel: {pod}}})
	}
	return p
}

func TestInspectProfile(t *testing.T) {
	c := inspectProfile(testProfile("shop/shop-1", "shop/shop-0", "shop/shop-1"), 100)
	if c.Valid != nil || c.Samples != 4 || c.Labelled != 3 || !slices.Equal(c.Pods, []string{"shop/shop-0", "shop/shop-1"}) ||
		!slices.Equal(c.SampleTypes, []string{"samples/count", "time/nanoseconds"}) {
		t.Errorf("inspectProfile = %+v", c)
	}
	bad := testProfile("a")
	bad.Sample[1].Value = []int64{1} // fewer values than sample types
	if c := inspectProfile(bad, 1); c.Valid == nil {
		t.Error("a profile with a short sample passed CheckValid")
	}
}

// runs makes runs with the wall times (seconds) and pods answered.
func runs(pods int, secs ...float64) []cliRun {
	var out []cliRun
	for _, s := range secs {
		out = append(out, cliRun{Wall: time.Duration(s * float64(time.Second)), Pods: pods, MaxRSS: 10 << 20})
	}
	return out
}

func TestRender(t *testing.T) {
	base := report{
		Start: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC), Took: 40 * time.Second,
		Machine: machine{CPU: "AMD EPYC", CPUs: 2, Go: "go1.26"},
		Plan:    plan{pods: 100, concurrency: 10, duration: 5 * time.Second},
		Setup:   4 * time.Second, SidecarRSS: 3000 << 20, KubeVersion: "v1.37.2",
		Command: "go run ./internal/bench/fleetreport -pods 100",
	}
	for _, tc := range []struct {
		name string
		rows []measurement
		want []string
		not  []string
	}{
		{
			name: "goal met",
			rows: []measurement{{Name: "goroutines", Single: runs(1, 0.05, 0.04, 0.06), Fleet: runs(100, 0.9, 1.1, 1.0)}},
			want: []string{"| goroutines | 0.05 s (0.05, 0.04, 0.06) | 1.00 s (0.90, 1.10, 1.00) | +0.95 s |", "| met |", "100 of 100 pods answered", "Reproduce: `go run ./internal/bench/fleetreport -pods 100`", "2026-11-25 17:00 UTC: AMD EPYC, 2 CPUs"},
			not:  []string{"not met"},
		},
		{
			name: "too slow",
			rows: []measurement{{Name: "wall", Single: runs(1, 5.0), Fleet: runs(100, 7.5, 7.1)}},
			want: []string{"+2.50 s", "**not met** |"},
		},
		{
			name: "fast because pods failed",
			rows: []measurement{{Name: "goroutines", Single: runs(1, 0.05), Fleet: append(runs(100, 0.9), runs(93, 0.5)...)}},
			want: []string{"**not met**: only 93 of 100 pods answered in a run", "93 of 100 pods answered in the worst run"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			r.Rows = tc.rows
			got := render(r)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("report lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(got, w) {
					t.Errorf("report has %q:\n%s", w, got)
				}
			}
		})
	}

	// The merged profile's line and the kubelet's errors.
	r := base
	fleet := runs(100, 6)
	fleet[0].Profile = &profileCheck{Samples: 10, Labelled: 9, Pods: []string{"a", "b"}, SampleTypes: []string{"samples/count"}, Bytes: 2048}
	r.Rows = []measurement{{Name: "wall", Single: runs(1, 5), Fleet: fleet}}
	r.KubeletStreams, r.KubeletErrors = 300, []error{errors.New("first"), errors.New("pod shop/shop-3 port 7070: `EOF`")}
	got := render(r)
	for _, w := range []string{"valid (`CheckValid`), 2.0 KiB", "10 samples, 9 with a `pod` label, 2 distinct pods (goal 100: **not met**)", "forwarded 300 connections; 2 of them", "the latest: `pod shop/shop-3 port 7070: 'EOF'`"} {
		if !strings.Contains(got, w) {
			t.Errorf("report lacks %q:\n%s", w, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := config{plan: plan{pods: 3, concurrency: 1, duration: time.Second, goroutineRuns: 1, singleRuns: 1, profileRuns: 1}}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*plan){
		"no pods":        func(p *plan) { p.pods = 0 },
		"no concurrency": func(p *plan) { p.concurrency = 0 },
		"short duration": func(p *plan) { p.duration = time.Millisecond },
		"no runs":        func(p *plan) { p.profileRuns = 0 },
	} {
		c := ok
		mut(&c.plan)
		if c.validate() == nil {
			t.Errorf("%s: validated", name)
		}
	}
}

// TestExecuteThreePods runs the report's core against a real control plane
// with three pods, the sidecar and CLI built from this tree, so the harness
// keeps working as the CLI changes.
func TestExecuteThreePods(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	if _, _, why := cluster.FindBinaries(); why != "" {
		t.Skip(why)
	}
	dir := t.TempDir()
	c := config{
		sidecar: filepath.Join(dir, "triage-sidecar"), cli: filepath.Join(dir, "triage"),
		plan: plan{pods: 3, concurrency: 2, duration: time.Second, goroutineRuns: 1, singleRuns: 1, profileRuns: 1},
	}
	for bin, pkg := range map[string]string{c.sidecar: "github.com/triage-sh/triage/cmd/triage-sidecar", c.cli: "github.com/triage-sh/triage/cmd/triage"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	r, err := execute(ctx, c, "go run ./internal/bench/fleetreport -pods 3")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 2 {
		t.Fatalf("%d rows, want goroutines and wall profile", len(r.Rows))
	}
	for _, m := range r.Rows {
		if len(m.Single) != 1 || len(m.Fleet) != 1 {
			t.Fatalf("%s: %d single and %d fleet runs, want 1 each", m.Name, len(m.Single), len(m.Fleet))
		}
		for _, run := range append(m.Single, m.Fleet...) {
			if run.ExitCode != 0 {
				t.Errorf("%s: the CLI exited %d: %s", m.Name, run.ExitCode, run.Stderr)
			}
			if run.MaxRSS <= 0 || run.Wall <= 0 {
				t.Errorf("%s: run not measured: %+v", m.Name, run)
			}
		}
		if got := m.Fleet[0].Pods; got != 3 {
			t.Errorf("%s: %d pods answered, want 3", m.Name, got)
		}
	}
	prof := r.Rows[1].Fleet[0].Profile
	if prof == nil || prof.Valid != nil || len(prof.Pods) != 3 || prof.Labelled == 0 {
		t.Errorf("merged profile: %+v", prof)
	}
	// At least one forwarded connection per pod per fleet run (the cold
	// one, goroutines, profile) and per single-pod run.
	if minStreams := int64(3*3 + 2); r.Cold.Pods != 3 || r.SidecarRSS <= 0 || r.KubeletStreams < minStreams {
		t.Errorf("cold run %d pods, sidecar RSS %d, kubelet streams %d", r.Cold.Pods, r.SidecarRSS, r.KubeletStreams)
	}
	if body := render(r); !strings.Contains(body, "| 3 pods ≤ single + 2s |") {
		t.Errorf("report:\n%s", body)
	}
}
