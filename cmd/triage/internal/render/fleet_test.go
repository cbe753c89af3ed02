package render

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/pprof/profile"
	"google.golang.org/protobuf/proto"

	"github.com/triage-sh/triage/client/fleet"
	"github.com/triage-sh/triage/internal/goroutines"
	"github.com/triage-sh/triage/internal/goroutines/goroutinespb"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// The fleet views' goldens live with package client/fleet's, in
// client/fleet/testdata; go test -update rewrites them.
var fleetTestdata = filepath.Join("..", "..", "..", "..", "client", "fleet", "testdata")

// fleetGolden is golden for fleetTestdata/name.golden (golden's names are
// relative to testdata, hence the "..").
func fleetGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden(t, filepath.Join("..", fleetTestdata, name), got)
}

// dumpPod reads a real dump from client/fleet/testdata/dumps and groups
// it as the sidecar does.
func dumpPod(t *testing.T, pod, file string) fleet.PodGoroutines {
	t.Helper()
	f, err := os.Open(filepath.Join(fleetTestdata, "dumps", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := goroutines.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	gs := goroutinespb.Groups(d.Group(goroutines.GroupOptions{}))
	return fleet.PodGoroutines{Pod: pod, Groups: gs,
		Summary: &triagev1.GoroutineSummary{Total: int64(d.Total), Groups: int64(len(gs)), Path: triagev1.GoroutinePath_GOROUTINE_PATH_TEXT, Source: "agent", Pid: 7}}
}

func fleetShop(t *testing.T) *fleet.MergedGoroutines {
	return fleet.MergeGoroutines([]fleet.PodGoroutines{
		dumpPod(t, "shop/shop-a", "shop-a.txt"), dumpPod(t, "shop/shop-b", "shop-b.txt"),
		dumpPod(t, "shop/shop-c", "shop-c.txt"), dumpPod(t, "shop/shop-d", "shop-d-v2.txt"),
	})
}

// fleetMany is 24 healthy pods in two namespaces and a leaking one.
func fleetMany(t *testing.T) *fleet.MergedGoroutines {
	var pods []fleet.PodGoroutines
	for i := range 24 {
		pods = append(pods, dumpPod(t, fmt.Sprintf("shop/shop-%02d", i), []string{"shop-a.txt", "shop-b.txt"}[i%2]))
	}
	pods = append(pods, dumpPod(t, "canary/shop-x", "shop-c.txt"))
	return fleet.MergeGoroutines(pods)
}

// fleetExplainPods are five pods of fixtureExplain; shop-d drifts.
func fleetExplainPods() ([]fleet.PodExplain, []string) {
	var pods []fleet.PodExplain
	var names []string
	for i, n := range []string{"a", "b", "c", "d", "e"} {
		r := fixtureExplain()
		r.Hostname = "checkout-7d9f8-" + n
		r.Build.Started = ts(fixtureNow.Add(-time.Duration(i+1) * time.Hour))
		if n == "d" {
			r.Settings[3].Value = "16" // max-inflight
			r.Build.Version = "v0.3.2"
			r.Capabilities[2].Enabled, r.Capabilities[2].Reason = true, "on"
			r.Findings = r.Findings[1:]
		}
		if n == "a" {
			r.Findings = append(r.Findings, &triagev1.Finding{Severity: triagev1.Severity_SEVERITY_WARNING, Code: "gc-cpu-high", Message: "the GC used 31% of CPU since start", Pid: 7})
		}
		pod := "shop/" + r.Hostname
		names = append(names, pod)
		pods = append(pods, fleet.PodExplain{Pod: pod, Explain: r, EnvoyVersion: "1.34.1"})
	}
	return pods, names
}

func fleetProcRows() []fleet.ProcRow {
	restarts := []int32{0, 0, 4, 0}
	var pods []fleet.PodProc
	for i, n := range []string{"a", "b", "c", "d"} {
		p := fixtureProcess()
		p.RssBytes = uint64(40+i) << 20
		p.Fds.Open = uint32(100 + i)
		if n == "c" {
			p.RssBytes, p.Fds.Open, p.Threads = 300<<20, 990, 120
		} else {
			p.Cgroup.MemoryEvents = map[string]uint64{"oom_kill": 0}
		}
		pods = append(pods, fleet.PodProc{Pod: "shop/checkout-7d9f8-" + n, Process: p, Restarts: &restarts[i]})
	}
	pods = append(pods, fleet.PodProc{Pod: "shop/checkout-7d9f8-e", List: &triagev1.ListProcessesResponse{Processes: fixtureSummaries()}})
	pods = append(pods, fleet.PodProc{Pod: "shop/checkout-7d9f8-f", List: &triagev1.ListProcessesResponse{}})
	return fleet.ProcRows(pods)
}

// fleetProfileSummary is a hand-made merged CPU profile of three pods (one
// much busier) and two left out.
func fleetProfileSummary(t *testing.T) *fleet.ProfileSummary {
	fn := &profile.Function{ID: 1, Name: "main.handle", SystemName: "main.handle", Filename: "/app/main.go"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn, Line: 10}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_000_000,
		Function: []*profile.Function{fn}, Location: []*profile.Location{loc},
	}
	for pod, n := range map[string]int64{"shop/checkout-7d9f8-a": 120, "shop/checkout-7d9f8-b": 131, "shop/checkout-7d9f8-c": 1400} {
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc}, Value: []int64{n, n * 10_000_000}, Label: map[string][]string{fleet.PodLabel: {pod}}})
	}
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	return fleet.SummarizeProfile(p, []fleet.PodError{
		{Pod: "shop/checkout-7d9f8-d", Err: fleet.ErrTraceNotMergeable},
		{Pod: "shop/checkout-7d9f8-e", Err: errors.New("its samples are [samples/count cpu/nanoseconds], but most pods' are [goroutine/count]: is this pod running another profile type or an older sidecar?")},
	})
}

func TestFleetGolden(t *testing.T) {
	explainPods, explainNames := fleetExplainPods()
	agreePods, agreeNames := fleetExplainPods()
	agreePods = []fleet.PodExplain{agreePods[1], agreePods[2]}
	agreeNames = agreeNames[1:3]
	tests := []struct {
		name   string
		render func(*bytes.Buffer) error
	}{
		{"fleet_goroutines", func(b *bytes.Buffer) error { return FleetGoroutines(b, fleetShop(t), FleetGoroutineOptions{}, Style{}) }},
		{"fleet_goroutines_stacks", func(b *bytes.Buffer) error {
			return FleetGoroutines(b, fleetShop(t), FleetGoroutineOptions{Stacks: true, MaxGroups: 2, Goroutine: GoroutineOptions{MaxFrames: 3}}, Style{})
		}},
		{"fleet_goroutines_many", func(b *bytes.Buffer) error { return FleetGoroutines(b, fleetMany(t), FleetGoroutineOptions{}, Style{}) }},
		{"fleet_goroutines_json", func(b *bytes.Buffer) error { return WriteFleetJSON(b, fleetShop(t)) }},
		{"fleet_explain", func(b *bytes.Buffer) error {
			return FleetExplain(b, fleet.DiffExplain(explainPods), explainNames, Style{})
		}},
		{"fleet_explain_agree", func(b *bytes.Buffer) error {
			return FleetExplain(b, fleet.DiffExplain(agreePods), agreeNames, Style{})
		}},
		{"fleet_explain_json", func(b *bytes.Buffer) error { return WriteFleetJSON(b, fleet.DiffExplain(explainPods)) }},
		{"fleet_proc", func(b *bytes.Buffer) error { return FleetProcs(b, fleetProcRows(), Style{}) }},
		{"fleet_proc_json", func(b *bytes.Buffer) error { return WriteFleetJSON(b, fleetProcRows()) }},
		{"fleet_profile", func(b *bytes.Buffer) error {
			return FleetProfile(b, fleetProfileSummary(t), "cpu-deploy-shop.pb.gz", Style{})
		}},
		{"fleet_profile_json", func(b *bytes.Buffer) error { return WriteFleetJSON(b, fleetProfileSummary(t)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.render(&b); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b.Bytes(), []byte("\x1b[")) {
				t.Error("plain style wrote ANSI escapes")
			}
			for i, line := range strings.Split(b.String(), "\n") {
				if strings.TrimRight(line, " ") != line {
					t.Errorf("line %d has trailing space: %q", i+1, line)
				}
				if n := utf8.RuneCountInString(line); n > fleetWidth && !strings.HasSuffix(tt.name, "_json") {
					t.Errorf("line %d is %d columns, more than %d: %q", i+1, n, fleetWidth, line)
				}
			}
			fleetGolden(t, tt.name, b.Bytes())
		})
	}
}

// TestFleetOddPodMarked checks that the odd pod is the one marked: "!" in
// plain text, red and unmarked with colour, and that a healthy one is not.
func TestFleetOddPodMarked(t *testing.T) {
	explainPods, names := fleetExplainPods()
	views := []struct {
		name    string
		odd     string // the odd pod's short name (or value)
		healthy string // a healthy pod's short name (or the usual value)
		render  func(*bytes.Buffer, Style) error
	}{
		{"goroutines", "shop-c", "shop-a", func(b *bytes.Buffer, st Style) error {
			return FleetGoroutines(b, fleetShop(t), FleetGoroutineOptions{}, st)
		}},
		{"proc", "checkout-7d9f8-c", "checkout-7d9f8-a", func(b *bytes.Buffer, st Style) error { return FleetProcs(b, fleetProcRows(), st) }},
		{"profile", "checkout-7d9f8-c", "checkout-7d9f8-a", func(b *bytes.Buffer, st Style) error {
			return FleetProfile(b, fleetProfileSummary(t), "x.pb.gz", st)
		}},
		{"explain", "16 (env)", "64 (env)", func(b *bytes.Buffer, st Style) error {
			return FleetExplain(b, fleet.DiffExplain(explainPods), names, st)
		}},
	}
	for _, v := range views {
		t.Run(v.name, func(t *testing.T) {
			var plain, color bytes.Buffer
			if err := v.render(&plain, Style{}); err != nil {
				t.Fatal(err)
			}
			if err := v.render(&color, Style{Color: true}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(plain.String(), v.odd+oddMark) {
				t.Errorf("plain text does not mark %q with %q:\n%s", v.odd, oddMark, plain.String())
			}
			if !strings.Contains(color.String(), "\x1b["+string(Red)+"m"+v.odd+"\x1b[0m") {
				t.Errorf("colour does not paint %q red:\n%q", v.odd, color.String())
			}
			if strings.Contains(color.String(), v.odd+oddMark) {
				t.Errorf("colour marks %q with %q too:\n%q", v.odd, oddMark, color.String())
			}
			if strings.Contains(plain.String(), v.healthy+oddMark) {
				t.Errorf("healthy %q is marked:\n%s", v.healthy, plain.String())
			}
			for _, line := range strings.Split(plain.String(), "\n") {
				for _, field := range strings.Fields(line) {
					if strings.HasSuffix(field, oddMark) && strings.HasPrefix(field, "shop-a") {
						t.Errorf("a healthy pod is marked: %q", line)
					}
				}
			}
		})
	}
}

// TestFleetJSONStable checks that the JSON is the same however the pods
// arrive.
func TestFleetJSONStable(t *testing.T) {
	a, _ := fleetExplainPods()
	rev := make([]fleet.PodExplain, len(a))
	for i := range a {
		rev[len(a)-1-i] = fleet.PodExplain{Pod: a[i].Pod, Explain: proto.Clone(a[i].Explain).(*triagev1.ExplainResponse), EnvoyVersion: a[i].EnvoyVersion}
	}
	var x, y bytes.Buffer
	if err := WriteFleetJSON(&x, fleet.DiffExplain(a)); err != nil {
		t.Fatal(err)
	}
	if err := WriteFleetJSON(&y, fleet.DiffExplain(rev)); err != nil {
		t.Fatal(err)
	}
	if x.String() != y.String() {
		t.Errorf("explain diff JSON depends on the pods' order:\n%s\n%s", x.String(), y.String())
	}
}
