package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// Tests against real child processes running the agent (internal/testapp).

var knownCounts = map[string]int64{"main.waitA": 6000, "main.waitB": 3000, "main.waitC": 1000}

func TestChildGoroutineCountsProfile(t *testing.T) {
	c := startChild(t, "-a", "6000", "-b", "3000", "-c", "1000")
	client := dial(t, c.socket)
	r := goroutinesOf(t, testCtx(t), client, agentv1.GoroutineFormat_GOROUTINE_FORMAT_PROFILE)
	if r.header.GetAttributes()["path"] != "profile" || r.header.GetMediaType() != mediaPprof {
		t.Errorf("header %v", r.header)
	}
	p, err := profile.Parse(bytes.NewReader(r.data))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, s := range p.Sample {
		for fn := range knownCounts {
			if sampleHas(s, fn) {
				got[fn] += s.Value[0]
			}
		}
	}
	for fn, want := range knownCounts {
		if got[fn] != want {
			t.Errorf("%s: %d goroutines in the profile, want %d", fn, got[fn], want)
		}
	}
	if n := r.trailer.GetCounters()["goroutines"]; n < 10000 {
		t.Errorf("trailer goroutines %d", n)
	}
}

func TestChildGoroutineCountsText(t *testing.T) {
	c := startChild(t, "-a", "6000", "-b", "3000", "-c", "1000")
	client := dial(t, c.socket)
	r := goroutinesOf(t, testCtx(t), client, agentv1.GoroutineFormat_GOROUTINE_FORMAT_TEXT)
	if r.header.GetAttributes()["path"] != "text" || r.header.GetAttributes()["stops_the_world"] != "true" {
		t.Errorf("header %v", r.header)
	}
	header := regexp.MustCompile(`^goroutine \d+ \[`)
	got := map[string]int64{}
	total := uint64(0)
	for _, block := range strings.Split(string(r.data), "\n\n") {
		if !header.MatchString(block) {
			continue
		}
		total++
		for fn := range knownCounts {
			if strings.Contains(block, "\n"+fn+"(") {
				got[fn]++
			}
		}
	}
	for fn, want := range knownCounts {
		if got[fn] != want {
			t.Errorf("%s: %d goroutine headers, want %d", fn, got[fn], want)
		}
	}
	if n := r.trailer.GetCounters()["goroutines"]; n != total {
		t.Errorf("trailer counts %d goroutines, the text has %d", n, total)
	}
	if r.trailer.GetCounters()["stop_the_world_ns"] == 0 || r.trailer.GetTruncated() {
		t.Errorf("trailer %v", r.trailer)
	}
	t.Logf("text dump of %d goroutines: %d bytes, world stopped %s", total, len(r.data), time.Duration(r.trailer.GetCounters()["stop_the_world_ns"]))
}

// sampleHas reports whether any frame of s is in function fn.
func sampleHas(s *profile.Sample, fn string) bool {
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil && l.Function.Name == fn {
				return true
			}
		}
	}
	return false
}

// shares sums value index i of the samples containing each function.
func shares(p *profile.Profile, i int, fns ...string) map[string]int64 {
	out := map[string]int64{}
	for _, s := range p.Sample {
		for _, fn := range fns {
			if sampleHas(s, fn) {
				out[fn] += s.Value[i]
			}
		}
	}
	return out
}

// wallShare checks that main.sleeper, which only sleeps, shows its share of
// wall time next to main.burner, which only burns CPU, while a CPU profile
// of the same program barely sees it.
func wallShare(t *testing.T, args ...string) {
	c := startChild(t, append([]string{"-sleeper", "-burner"}, args...)...)
	client := dial(t, c.socket)
	ctx := testCtx(t)
	r, err := profileOf(t, ctx, client, req(agentv1.ProfileType_PROFILE_TYPE_WALL, 3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(bytes.NewReader(r.data))
	if err != nil {
		t.Fatal(err)
	}
	timeIdx := len(p.SampleType) - 1
	w := shares(p, timeIdx, "main.sleeper", "main.burner")
	share := float64(w["main.sleeper"]) / float64(w["main.sleeper"]+w["main.burner"])
	t.Logf("wall profile (path %s, notes %q): sleeper %d ns, burner %d ns, sleeper share %.2f",
		r.header.GetAttributes()["path"], r.trailer.GetNotes(), w["main.sleeper"], w["main.burner"], share)
	if w["main.burner"] == 0 || share < 0.25 {
		t.Errorf("main.sleeper's wall share is %.2f, want > 0.25 (burner %d)", share, w["main.burner"])
	}

	r, err = profileOf(t, ctx, client, req(agentv1.ProfileType_PROFILE_TYPE_CPU, 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	p, err = profile.Parse(bytes.NewReader(r.data))
	if err != nil {
		t.Fatal(err)
	}
	cpu := shares(p, 0, "main.sleeper", "main.burner")
	cshare := float64(cpu["main.sleeper"]) / float64(cpu["main.sleeper"]+cpu["main.burner"])
	t.Logf("cpu profile: sleeper %d samples, burner %d, sleeper share %.3f", cpu["main.sleeper"], cpu["main.burner"], cshare)
	if cpu["main.burner"] == 0 || cshare > 0.05 {
		t.Errorf("main.sleeper's CPU share is %.3f, want about 0 (burner %d samples)", cshare, cpu["main.burner"])
	}
}

func TestChildWallProfileSleeperShare(t *testing.T) { wallShare(t) }

// TestChildWallProfileAdaptive is the same with enough goroutines that the
// agent's adaptive sampler runs instead of plain fgprof.
func TestChildWallProfileAdaptive(t *testing.T) { wallShare(t, "-a", "5000") }

func TestChildFlightRecorder(t *testing.T) {
	c := startChild(t, "-flight", "-sleeper")
	client := dial(t, c.socket)
	ctx := testCtx(t)
	info, err := client.GetInfo(ctx, &agentv1.GetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !info.GetFlightRecorder() || info.GetFlightRecorderWindow().AsDuration() != 10*time.Second {
		t.Errorf("info %v", info)
	}
	time.Sleep(1500 * time.Millisecond) // let the recorder fill a little
	r, err := profileOf(t, ctx, client, &agentv1.ProfileRequest{Type: agentv1.ProfileType_PROFILE_TYPE_TRACE, Last: true})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^go 1\.\d+ trace\x00`).Match(r.data) {
		t.Errorf("flight recorder snapshot starts %q, want the trace magic", r.data[:min(len(r.data), 16)])
	}
	t.Logf("flight recorder snapshot: %d bytes", len(r.data))
	// A forward trace works beside the flight recorder.
	r, err = profileOf(t, ctx, client, req(agentv1.ProfileType_PROFILE_TYPE_TRACE, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(r.data, []byte("go 1.")) {
		t.Errorf("trace starts %q", r.data[:min(len(r.data), 16)])
	}
}

// TestChildNoTCP: the agent's process has no TCP or UDP socket at all.
func TestChildNoTCP(t *testing.T) {
	c := startChild(t)
	client := dial(t, c.socket)
	if _, err := client.GetInfo(testCtx(t), &agentv1.GetInfoRequest{}); err != nil {
		t.Fatal(err)
	}
	pid := c.cmd.Process.Pid
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fd)
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	if len(inodes) == 0 {
		t.Fatal("the child has no socket at all: is the agent serving?")
	}
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && inodes[f[9]] {
				t.Errorf("the agent's process has a %s socket: %s", table, line)
			}
		}
	}
}

func TestChildRegistered(t *testing.T) {
	c := startChild(t, "-config")
	client := dial(t, c.socket)
	resp, err := client.GetRegistered(testCtx(t), &agentv1.GetRegisteredRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetConfig()) != 1 || len(resp.GetState()) != 1 {
		t.Fatalf("registered %v", resp)
	}
	cfg := resp.GetConfig()[0]
	for _, secret := range []string{"hunter2", "hooks.example", "Bearer"} {
		if strings.Contains(cfg.GetJson(), secret) {
			t.Errorf("config leaks %q: %s", secret, cfg.GetJson())
		}
	}
	if !strings.Contains(cfg.GetJson(), `"host":"db:5432"`) || strings.Join(cfg.GetRedacted(), " ") != "db.password webhook headers.Authorization" {
		t.Errorf("config %s, redacted %q", cfg.GetJson(), cfg.GetRedacted())
	}
	if st := resp.GetState()[0]; !strings.Contains(st.GetError(), "state is broken") || st.GetJson() != "" {
		t.Errorf("state %v", st)
	}
	// The agent keeps serving after the panic.
	if _, err := client.GetInfo(testCtx(t), &agentv1.GetInfoRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestChildCost measures the agent's idle cost and the flight recorder's
// steady cost in a real process. It reports; it asserts nothing about time.
func TestChildCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for several seconds")
	}
	type sample struct {
		name      string
		rssKiB    int64
		cpuTicks  int64
		afterCall int64
	}
	measure := func(name string, args ...string) sample {
		c := startChild(t, args...)
		pid := c.cmd.Process.Pid
		time.Sleep(time.Second)
		t0 := procCPUTicks(t, pid)
		time.Sleep(3 * time.Second)
		s := sample{name: name, rssKiB: procRSSKiB(t, pid), cpuTicks: procCPUTicks(t, pid) - t0}
		if !strings.Contains(strings.Join(args, " "), "-no-agent") {
			client := dial(t, c.socket)
			if _, err := client.GetRuntimeStats(testCtx(t), &agentv1.GetRuntimeStatsRequest{}); err != nil {
				t.Fatal(err)
			}
			s.afterCall = procRSSKiB(t, pid)
		}
		c.stop(t)
		return s
	}
	base := measure("no agent", "-no-agent", "-sleeper")
	idle := measure("agent, idle", "-sleeper")
	fr := measure("agent + flight recorder", "-sleeper", "-flight")
	for _, s := range []sample{base, idle, fr} {
		t.Logf("%-26s RSS %6d KiB (delta %+5d KiB), CPU over 3 s: %d ticks (delta %+d), RSS after one call %d KiB",
			s.name, s.rssKiB, s.rssKiB-base.rssKiB, s.cpuTicks, s.cpuTicks-base.cpuTicks, s.afterCall)
	}
}
