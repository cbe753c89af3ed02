package render

import (
	"fmt"
	"io"
	"strings"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// gcCPUWarn is the GC CPU fraction shown in yellow (explain's finding
// fires at the same level).
const gcCPUWarn = 0.25

// Runtime writes a Go runtime snapshot for a human: settings, goroutines,
// heap, GC and scheduling, uptime and build, then what the source could
// not give.
func Runtime(w io.Writer, r *triagev1.GetRuntimeStatsResponse, st Style) error {
	ew := &errWriter{w: w}
	title := "GO RUNTIME"
	if r.GetSource() != "" {
		title += " (" + r.GetSource()
		if r.GetPid() != 0 {
			title += fmt.Sprintf(", pid %d", r.GetPid())
		}
		title += ")"
	}
	Section(ew, st, true, title)
	missing := map[string]string{}
	for _, u := range r.GetUnavailable() {
		missing[u.GetField()] = u.GetReason()
	}
	t := NewTable()
	row := func(key, field string, value string, ok bool) {
		switch {
		case ok:
			t.Row(key, value)
		case missing[field] != "":
			t.Row(key, C(Yellow, Unavailable(missing[field])))
			delete(missing, field)
		default:
			t.Row(key, "-")
		}
	}
	row("go", "go_version", r.GetGoVersion(), r.GetGoVersion() != "")
	row("gomaxprocs", "gomaxprocs", fmt.Sprintf("%d (%s)", r.GetGomaxprocs(), Plural(int(r.GetNumCpu()), "CPU", "CPUs")), r.GetGomaxprocs() != 0)
	gogc := fmt.Sprint(r.GetGogc())
	if r.GetGogc() < 0 {
		gogc = "off"
	}
	row("gogc", "gogc", gogc, r.GetGogc() != 0 || missing["gogc"] == "")
	limit := "unset"
	if r.GetGomemlimitBytes() > 0 {
		limit = Bytes(uint64(r.GetGomemlimitBytes()))
	}
	row("gomemlimit", "gomemlimit_bytes", limit, missing["gomemlimit_bytes"] == "" || r.GetGomemlimitBytes() > 0)
	row("goroutines", "goroutines", fmt.Sprint(r.GetGoroutines()), r.GetGoroutines() > 0)
	heap := "live " + Bytes(r.GetHeapLiveBytes())
	if r.GetHeapGoalBytes() > 0 {
		heap += ", goal " + Bytes(r.GetHeapGoalBytes())
	}
	if lim := r.GetGomemlimitBytes(); lim > 0 {
		heap += " (" + Percent(float64(r.GetHeapLiveBytes()), float64(lim)) + " of GOMEMLIMIT)"
	}
	row("heap", "heap_live_bytes", heap, r.GetHeapLiveBytes() > 0)
	if r.GetGcCycles() > 0 || missing["gc_cycles"] == "" {
		gc := Cell{Text: fmt.Sprintf("%s, %.1f%% of CPU since start", Plural(int(r.GetGcCycles()), "cycle", "cycles"), 100*r.GetGcCpuFraction())}
		if r.GetGcCpuFraction() > gcCPUWarn {
			gc.Color = Yellow
		}
		t.Row("gc", gc)
	} else {
		row("gc", "gc_cycles", "", false)
	}
	row("gc pause", "gc_pause_p50", fmt.Sprintf("p50 %s, p99 %s", Latency(r.GetGcPauseP50().AsDuration()), Latency(r.GetGcPauseP99().AsDuration())), r.GetGcPauseP99() != nil)
	row("sched latency", "sched_latency_p99", "p99 "+Latency(r.GetSchedLatencyP99().AsDuration()), r.GetSchedLatencyP99() != nil)
	row("uptime", "uptime", Duration(r.GetUptime().AsDuration().Truncate(1e9)), r.GetUptime() != nil)
	if b := r.GetBuild(); b != nil {
		t.Row("build", buildSummary(b))
	} else {
		row("build", "build", "", false)
	}
	if n := len(r.GetMetrics()); n > 0 {
		t.Row("metrics", fmt.Sprintf("%d runtime/metrics samples (all of them with -o json)", n))
	}
	for _, u := range r.GetUnavailable() {
		if reason, ok := missing[u.GetField()]; ok {
			t.Row(u.GetField(), C(Yellow, Unavailable(reason)))
		}
	}
	t.Write(ew, st)
	return ew.err
}

// buildSummary is a Go build on one line: "example.com/app v1.2.3
// (go1.26.0), 42 deps".
func buildSummary(b *triagev1.GoBuild) string {
	var parts []string
	main := b.GetPath()
	if m := b.GetMain(); m != nil {
		main = module(m)
	}
	if main != "" {
		parts = append(parts, main)
	}
	if b.GetGoVersion() != "" {
		parts = append(parts, "("+b.GetGoVersion()+")")
	}
	s := strings.Join(parts, " ")
	deps := Plural(len(b.GetDeps()), "dep", "deps")
	if s == "" {
		return deps
	}
	return s + ", " + deps
}
