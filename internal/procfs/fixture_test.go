package procfs

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixtureFS reads the fake proc and cgroup roots in testdata.
func fixtureFS() FS { return New("testdata/proc", "testdata/cgroup") }

// fields returns the Field of each Unavailable.
func fields(us []Unavailable) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Field)
	}
	return out
}

func TestFixtureProcess(t *testing.T) {
	p, err := fixtureFS().Process(1234)
	if err != nil {
		t.Fatal(err)
	}
	if p.Stat.Comm != "my (weird) app" || p.Stat.PPID != 1 || p.Stat.State != 'S' || p.Stat.NumThreads != 7 {
		t.Errorf("stat = %+v", p.Stat)
	}
	if want := time.Unix(1700000123, 450_000_000); !p.StartTime.Equal(want) {
		t.Errorf("StartTime = %v, want %v", p.StartTime, want)
	}
	if want := (Status{RSSBytes: 10 << 20, PeakRSSBytes: 20 << 20, UID: 1000, GID: 2000, Threads: 7}); p.Status == nil || *p.Status != want {
		t.Errorf("Status = %+v, want %+v", p.Status, want)
	}
	if want := []string{"/usr/local/bin/app", "--port=8080", "--name=a b"}; !reflect.DeepEqual(p.Cmdline, want) {
		t.Errorf("Cmdline = %q, want %q", p.Cmdline, want)
	}
	if want := []EnvVar{{"HOME", "/home/app"}, {"API_TOKEN", "s3cret"}, {"EMPTY", ""}, {"NOEQ", ""}, {"URL", "http://x/?a=b"}}; !reflect.DeepEqual(p.Environ, want) {
		t.Errorf("Environ = %q, want %q", p.Environ, want)
	}
	if got, want := p.Limits[LimitOpenFiles], (Limit{Soft: 1024, Hard: 4096}); got != want {
		t.Errorf("open files limit = %+v, want %+v", got, want)
	}
	wantFDs := FDs{
		Open: 14,
		ByKind: map[string]int{
			KindChar: 1, KindPipe: 2, KindAnonInode: 1, KindSocket: 7, KindDir: 1, KindFile: 1, KindOther: 1,
		},
		SocketInodes: []uint64{7001, 7002, 7003, 7004, 7005, 7006, 7007},
	}
	if p.FDs == nil || !reflect.DeepEqual(*p.FDs, wantFDs) {
		t.Errorf("FDs = %+v, want %+v", p.FDs, wantFDs)
	}
	if p.Sockets == nil {
		t.Fatal("Sockets = nil")
	}
	if want := map[string]int{"LISTEN": 2, "ESTABLISHED": 1}; !reflect.DeepEqual(p.Sockets.TCPByState, want) {
		t.Errorf("TCPByState = %v, want %v", p.Sockets.TCPByState, want)
	}
	if s := p.Sockets; s.UDP != 2 || s.Unix != 1 || s.Other != 1 || len(s.List) != 5 {
		t.Errorf("UDP, Unix, Other, len(List) = %d, %d, %d, %d; want 2, 1, 1, 5", s.UDP, s.Unix, s.Other, len(s.List))
	}
	cg := p.Cgroup
	if cg == nil {
		t.Fatal("Cgroup = nil")
	}
	if cg.Path != "/kubepods.slice/pod1/app" || cg.MemoryCurrent != 104857600 || cg.MemoryMax != 268435456 ||
		cg.MemoryPeak != 200000000 || cg.MemoryEvents["oom_kill"] != 1 || cg.MemoryEvents["oom"] != 2 ||
		cg.CPUQuotaCores != 0.5 || cg.CPUMax != "50000 100000" || cg.CPUStat["nr_throttled"] != 7 ||
		cg.PIDsCurrent != 7 || cg.PIDsMax != 0 || len(cg.Pressure) != 3 {
		t.Errorf("Cgroup = %+v", cg)
	}
	// The fixture's exe points nowhere, so only the build info is missing.
	if got, want := fields(p.Unavailable), []string{"go"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Unavailable = %v, want %v", p.Unavailable, want)
	}
	golden(t, "1234", p)
}

func TestFixturePartial(t *testing.T) {
	tests := []struct {
		pid         int
		unavailable []string
		reasons     map[string]string // field -> a substring of its reason
	}{
		// A kernel thread (without the fd directory git cannot hold empty),
		// in the root cgroup, which has no memory, cpu.max or pids files.
		{2, []string{
			"executable", "fds", "sockets",
			"cgroup.memory.current", "cgroup.memory.max", "cgroup.memory.peak", "cgroup.memory.events",
			"cgroup.cpu.max", "cgroup.pids.current", "cgroup.pids.max",
		}, map[string]string{
			"executable":        "kernel thread",
			"fds":               "testdata/proc/2/fd does not exist",
			"sockets":           "see fds",
			"cgroup.memory.max": "memory controller is not enabled",
		}},
		// cgroup v1 only, a malformed status line, an exe that points nowhere.
		{77, []string{"status", "go", "fds", "sockets", "cgroup"}, map[string]string{
			"status": "VmRSS",
			"cgroup": "cgroup v1 only",
		}},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.pid), func(t *testing.T) {
			p, err := fixtureFS().Process(tt.pid)
			if err != nil {
				t.Fatal(err)
			}
			if got := fields(p.Unavailable); !reflect.DeepEqual(got, tt.unavailable) {
				t.Errorf("Unavailable fields = %q, want %q", got, tt.unavailable)
			}
			for _, u := range p.Unavailable {
				if sub, ok := tt.reasons[u.Field]; ok && !strings.Contains(u.Reason, sub) {
					t.Errorf("reason for %s = %q, want it to contain %q", u.Field, u.Reason, sub)
				}
			}
			golden(t, filepath.Base(p.Stat.Comm), p)
		})
	}
}

func TestFixtureNotFound(t *testing.T) {
	for _, pid := range []int{4242, 0, -1} {
		if _, err := fixtureFS().Process(pid); !errors.Is(err, ErrNotFound) {
			t.Errorf("Process(%d) error = %v, want ErrNotFound", pid, err)
		}
		if _, err := fixtureFS().Summary(pid, time.Time{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Summary(%d) error = %v, want ErrNotFound", pid, err)
		}
	}
}

func TestFixturePIDsAndSelf(t *testing.T) {
	pids, err := fixtureFS().PIDs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{2, 77, 1234}; !reflect.DeepEqual(pids, want) {
		t.Errorf("PIDs() = %v, want %v", pids, want)
	}
	self, err := fixtureFS().Self()
	if err != nil || self != 1234 {
		t.Errorf("Self() = %d, %v; want 1234", self, err)
	}
	if _, err := New(t.TempDir(), "").Self(); err == nil {
		t.Error("Self() on a root without self succeeded")
	}
	if _, err := New(filepath.Join(t.TempDir(), "none"), "").PIDs(); err == nil {
		t.Error("PIDs() on a missing root succeeded")
	}
}

func TestFixtureSummary(t *testing.T) {
	boot := time.Unix(1700000000, 0)
	s, err := fixtureFS().Summary(1234, boot)
	if err != nil {
		t.Fatal(err)
	}
	if s.FDs != 14 || s.RSSBytes != 10<<20 || len(s.Cmdline) != 3 || s.Stat.Comm != "my (weird) app" ||
		!s.StartTime.Equal(time.Unix(1700000123, 450_000_000)) {
		t.Errorf("Summary(1234) = %+v", s)
	}
	s, err = fixtureFS().Summary(2, boot)
	if err != nil {
		t.Fatal(err)
	}
	if s.FDs != -1 || s.Cmdline != nil {
		t.Errorf("Summary(2) = %+v, want FDs -1 and no cmdline", s)
	}
}

// TestCgroupRoots checks which directory is read for a cgroup path: the
// unified mount of a hybrid host, and never outside the root.
func TestCgroupRoots(t *testing.T) {
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		layout  map[string]string // files under the cgroup root
		cgroup  string            // /proc/PID/cgroup
		wantDir string            // relative to the cgroup root; "" for an error
	}{
		{"v2", map[string]string{"cgroup.controllers": "", "a/cpu.stat": "usage_usec 1\n"}, "0::/a\n", "a"},
		{"hybrid", map[string]string{"memory/tasks": "", "unified/cgroup.controllers": "", "unified/a/cpu.stat": "usage_usec 1\n"}, "4:memory:/x\n0::/a\n", "unified/a"},
		{"root", map[string]string{"cgroup.controllers": "", "cpu.stat": "usage_usec 1\n"}, "0::/\n", "."},
		{"escape", map[string]string{"cgroup.controllers": "", "cpu.stat": "usage_usec 1\n"}, "0::/../../..\n", "."},
		{"missing", map[string]string{"cgroup.controllers": ""}, "0::/gone\n", ""},
		{"v1 only", map[string]string{"memory/tasks": ""}, "4:memory:/x\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			proc, cg := filepath.Join(dir, "proc"), filepath.Join(dir, "cgroup")
			write(filepath.Join(proc, "5", "cgroup"), tt.cgroup)
			for name, data := range tt.layout {
				write(filepath.Join(cg, name), data)
			}
			c, err := New(proc, cg).Cgroup(5)
			if tt.wantDir == "" {
				if err == nil {
					t.Fatalf("Cgroup() = %+v, want an error", c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(cg, tt.wantDir); c.Dir != want {
				t.Errorf("Dir = %s, want %s", c.Dir, want)
			}
			if c.CPUStat["usage_usec"] != 1 {
				t.Errorf("CPUStat = %v, want usage_usec 1", c.CPUStat)
			}
		})
	}
}

// TestTruncation checks that cmdline and environ reads stop at MaxArgFile
// and say so.
func TestTruncation(t *testing.T) {
	proc := t.TempDir()
	src, err := os.ReadDir("testdata/proc/77")
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(proc, "77")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range src {
		if e.Type().IsRegular() {
			data, err := os.ReadFile(filepath.Join("testdata/proc/77", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	big := strings.Repeat("A=0123456789\x00", MaxArgFile/13+10)
	for _, name := range []string{"cmdline", "environ"} {
		if err := os.WriteFile(filepath.Join(dst, name), []byte(big), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args, err := New(proc, "").Cmdline(77)
	if err != nil {
		t.Fatal(err)
	}
	if !args.Truncated || len(strings.Join(args.Values, "\x00")) > MaxArgFile {
		t.Errorf("Cmdline: truncated = %v, %d bytes; want truncated at %d", args.Truncated, len(strings.Join(args.Values, "\x00")), MaxArgFile)
	}
	p, err := New(proc, "").Process(77)
	if err != nil {
		t.Fatal(err)
	}
	var truncated []string
	for _, u := range p.Unavailable {
		if strings.Contains(u.Reason, "truncated") {
			truncated = append(truncated, u.Field)
		}
	}
	if want := []string{"cmdline", "environment"}; !reflect.DeepEqual(truncated, want) {
		t.Errorf("truncated parts = %v, want %v", truncated, want)
	}
}

// golden compares v, as indented JSON, with testdata/golden/NAME.json, or
// rewrites that file with -update.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", path, got)
	}
}
