package process

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/triage-sh/triage/internal/procfs"
	"github.com/triage-sh/triage/internal/redact"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// fakeRoots writes a small proc root and cgroup root: pid 1234 (self), a
// Python-like app in a limited cgroup; pid 7 without an fd directory; pid
// 99 with a stat that does not parse.
func fakeRoots(t *testing.T) (proc, cg string) {
	t.Helper()
	dir := t.TempDir()
	proc, cg = filepath.Join(dir, "proc"), filepath.Join(dir, "cgroup")
	files := map[string]string{
		"proc/stat":                  "cpu 1 2 3\nbtime 1700000000\n",
		"proc/1234/stat":             "1234 (app) S 1 1234 1234 0 -1 0 0 0 0 0 250 125 0 0 20 0 3 0 12345 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		"proc/1234/status":           "Name:\tapp\nUid:\t1000\t1000\t1000\t1000\nGid:\t2000\t2000\t2000\t2000\nVmHWM:\t2048 kB\nVmRSS:\t1024 kB\nThreads:\t3\n",
		"proc/1234/cmdline":          "python3\x00app.py\x00",
		"proc/1234/environ":          "HOME=/app\x00DB_PASSWORD=hunter2\x00apiKey=k\x00",
		"proc/1234/limits":           "Limit Soft Limit Hard Limit Units\nMax open files            1024                 4096                 files     \n",
		"proc/1234/cgroup":           "0::/app\n",
		"proc/1234/net/tcp":          "header\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 501 1 0\n",
		"proc/1234/net/udp":          "header\n   0: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 502 2 0\n",
		"proc/7/stat":                "7 (worker) R 1234 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 200 0 0\n",
		"proc/7/cmdline":             "worker\x00",
		"proc/99/stat":               "garbage\n",
		"proc/3/stat":                "3 (kworker/0:1) I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n",
		"cgroup/cgroup.controllers":  "cpu memory pids\n",
		"cgroup/app/memory.current":  "1000\n",
		"cgroup/app/memory.max":      "4000\n",
		"cgroup/app/memory.peak":     "3000\n",
		"cgroup/app/memory.events":   "oom 1\noom_kill 1\n",
		"cgroup/app/cpu.max":         "200000 100000\n",
		"cgroup/app/cpu.stat":        "usage_usec 10\nnr_throttled 2\n",
		"cgroup/app/cpu.pressure":    "some avg10=1.00 avg60=2.00 avg300=3.00 total=4\n",
		"cgroup/app/memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"cgroup/app/io.pressure":     "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"cgroup/app/pids.current":    "3\n",
		"cgroup/app/pids.max":        "100\n",
	}
	links := map[string]string{
		"proc/self":      "1234",
		"proc/1234/exe":  "/usr/bin/python3.12-not-here",
		"proc/1234/fd/0": "/dev/null",
		"proc/1234/fd/1": "pipe:[1]",
		"proc/1234/fd/2": "pipe:[1]",
		"proc/1234/fd/3": "socket:[501]",
		"proc/1234/fd/4": "socket:[502]",
		"proc/1234/fd/5": "socket:[503]",
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}
	for name, target := range links {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	return proc, cg
}

// writeFile writes data to name, creating its directory.
func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixedClock makes in's clock return 1700000200 s.
func fixedClock(in *Inspector) { in.now = func() time.Time { return time.Unix(1700000200, 0) } }

func TestInspectorGetFake(t *testing.T) {
	proc, cg := fakeRoots(t)
	in := NewInspector(proc, cg)
	fixedClock(in)
	for _, listSockets := range []bool{false, true} {
		p, err := in.Get(0, listSockets)
		if err != nil {
			t.Fatal(err)
		}
		if p.Pid != 1234 || !p.Self || p.Ppid != 1 || p.Command != "app" || p.State != "S (sleeping)" ||
			p.Threads != 3 || p.RssBytes != 1<<20 || p.PeakRssBytes != 2<<20 || p.Uid != 1000 || p.Gid != 2000 {
			t.Errorf("process = %v", p)
		}
		if !reflect.DeepEqual(p.Cmdline, []string{"python3", "app.py"}) || p.Executable != "/usr/bin/python3.12-not-here" {
			t.Errorf("cmdline, executable = %q, %q", p.Cmdline, p.Executable)
		}
		if got, want := p.StartTime.AsTime(), time.Unix(1700000123, 450_000_000); !got.Equal(want) {
			t.Errorf("start time = %v, want %v", got, want)
		}
		if got, want := p.Uptime.AsDuration(), 76550*time.Millisecond; got != want {
			t.Errorf("uptime = %v, want %v", got, want)
		}
		if p.CpuUser.AsDuration() != 2500*time.Millisecond || p.CpuSystem.AsDuration() != 1250*time.Millisecond {
			t.Errorf("cpu = %v %v", p.CpuUser.AsDuration(), p.CpuSystem.AsDuration())
		}
		wantEnv := []*triagev1.EnvVar{
			{Name: "HOME", Value: "/app"},
			{Name: "DB_PASSWORD", Value: redact.Redacted, Redacted: true},
			{Name: "apiKey", Value: redact.Redacted, Redacted: true},
		}
		if !equalEnv(p.Environment, wantEnv) {
			t.Errorf("environment = %v, want %v", p.Environment, wantEnv)
		}
		f := p.Fds
		if f.GetOpen() != 6 || f.GetSoftLimit() != 1024 || f.GetHardLimit() != 4096 ||
			!reflect.DeepEqual(f.GetByKind(), map[string]uint32{"char": 1, "pipe": 2, "socket": 3}) {
			t.Errorf("fds = %v", f)
		}
		s := p.Sockets
		if !reflect.DeepEqual(s.GetTcpByState(), map[string]uint32{"LISTEN": 1}) || s.GetUdp() != 1 || s.GetOther() != 1 || s.GetUnix() != 0 {
			t.Errorf("sockets = %v", s)
		}
		if wantList := map[bool]int{false: 0, true: 2}[listSockets]; len(s.GetSockets()) != wantList {
			t.Errorf("include_sockets=%v: %d sockets listed, want %d", listSockets, len(s.GetSockets()), wantList)
		}
		c := p.Cgroup
		if c.GetPath() != "/app" || c.GetMemoryCurrentBytes() != 1000 || c.GetMemoryMaxBytes() != 4000 || c.GetMemoryPeakBytes() != 3000 ||
			c.GetMemoryEvents()["oom_kill"] != 1 || c.GetCpuQuotaCores() != 2 || c.GetCpuMax() != "200000 100000" ||
			c.GetCpuStat()["nr_throttled"] != 2 || c.GetPidsCurrent() != 3 || c.GetPidsMax() != 100 {
			t.Errorf("cgroup = %v", c)
		}
		if len(c.GetPressure()) != 3 || c.GetPressure()[0].GetResource() != "cpu" || c.GetPressure()[0].GetSome().GetAvg60() != 2 ||
			c.GetPressure()[0].GetFull() != nil || c.GetPressure()[1].GetFull() == nil {
			t.Errorf("pressure = %v", c.GetPressure())
		}
		if len(p.Unavailable) != 1 || p.Unavailable[0].GetField() != "go" || p.Go != nil {
			t.Errorf("unavailable = %v, go = %v; want only go unavailable", p.Unavailable, p.Go)
		}
	}
}

// equalEnv compares environments field by field.
func equalEnv(a, b []*triagev1.EnvVar) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].GetName() != b[i].GetName() || a[i].GetValue() != b[i].GetValue() || a[i].GetRedacted() != b[i].GetRedacted() {
			return false
		}
	}
	return true
}

func TestInspectorGetErrors(t *testing.T) {
	proc, cg := fakeRoots(t)
	in := NewInspector(proc, cg)
	if _, err := in.Get(4242, false); !errors.Is(err, procfs.ErrNotFound) || !IsNotFound(err) {
		t.Errorf("Get(4242) error = %v, want ErrNotFound", err)
	}
	if _, err := in.Get(-1, false); err == nil || IsNotFound(err) {
		t.Errorf("Get(-1) error = %v, want a non-NotFound error", err)
	}
	// A process with an unparseable stat is still returned, with stat unavailable.
	p, err := in.Get(99, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid != 99 || p.Unavailable[0].GetField() != "stat" {
		t.Errorf("Get(99) = %v", p)
	}
}

func TestInspectorListFake(t *testing.T) {
	proc, cg := fakeRoots(t)
	in := NewInspector(proc, cg)
	fixedClock(in)
	list, kthreads, err := in.List()
	if err != nil {
		t.Fatal(err)
	}
	// 99 is left out: its stat does not parse; 3 is a kernel thread (PF_KTHREAD in its flags).
	if len(list) != 2 || kthreads != 1 {
		t.Fatalf("List() = %v, %d kernel threads; want pids 7 and 1234 and 1 kernel thread", list, kthreads)
	}
	w, app := list[0], list[1]
	if w.Pid != 7 || w.Self || w.Fds != -1 || w.Command != "worker" || w.State != "R (running)" || w.Ppid != 1234 ||
		w.Uptime.AsDuration() != 198*time.Second {
		t.Errorf("list[0] = %v", w)
	}
	if app.Pid != 1234 || !app.Self || app.Fds != 6 || app.RssBytes != 1<<20 || app.Threads != 3 || len(app.Cmdline) != 2 {
		t.Errorf("list[1] = %v", app)
	}
	if _, _, err := NewInspector(filepath.Join(t.TempDir(), "none"), "").List(); err == nil {
		t.Error("List() on a missing proc root succeeded")
	}
}

// TestInspectorLive reads a real child and the test process itself.
func TestInspectorLive(t *testing.T) {
	pid := startChild(t, "STRIPE_SECRET_KEY=sk_live_x", "PLAIN_SETTING=visible")
	in := NewInspector("", "")
	p, err := in.Get(pid, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Self || p.Ppid != int32(os.Getpid()) || p.Fds.GetOpen() == 0 || p.Go.GetGoVersion() == "" {
		t.Errorf("child = %v", p)
	}
	env := map[string]*triagev1.EnvVar{}
	for _, v := range p.Environment {
		env[v.Name] = v
	}
	if v := env["STRIPE_SECRET_KEY"]; v == nil || !v.Redacted || v.Value != redact.Redacted {
		t.Errorf("STRIPE_SECRET_KEY = %v, want redacted", v)
	}
	if v := env["PLAIN_SETTING"]; v == nil || v.Redacted || v.Value != "visible" {
		t.Errorf("PLAIN_SETTING = %v, want visible", v)
	}

	list, _, err := in.List()
	if err != nil {
		t.Fatal(err)
	}
	var sawSelf, sawChild bool
	for i, s := range list {
		if i > 0 && list[i-1].Pid >= s.Pid {
			t.Errorf("list not sorted at %d: %d then %d", i, list[i-1].Pid, s.Pid)
		}
		if s.Self != (int(s.Pid) == os.Getpid()) {
			t.Errorf("pid %d: self = %v", s.Pid, s.Self)
		}
		sawSelf = sawSelf || s.Self
		if int(s.Pid) == pid {
			sawChild = true
			if s.Fds <= 0 || s.Uptime == nil || s.Ppid != int32(os.Getpid()) {
				t.Errorf("child summary = %v", s)
			}
		}
	}
	if !sawSelf || !sawChild {
		t.Errorf("list has self %v, child %v; want both", sawSelf, sawChild)
	}
}

func TestFactsSkipSocketsAndCacheBuilds(t *testing.T) {
	in := NewInspector("", "")
	full, err := in.Get(0, false)
	if err != nil {
		t.Fatal(err)
	}
	facts, err := in.Facts(0)
	if err != nil {
		t.Fatal(err)
	}
	if full.Sockets == nil || facts.Sockets != nil {
		t.Fatalf("Get must read sockets and Facts must not: %v / %v", full.Sockets, facts.Sockets)
	}
	if facts.Go.GetGoVersion() == "" || facts.Fds.GetOpen() == 0 {
		t.Fatalf("facts lack go build or fds: %v", facts)
	}
	if n := len(in.builds.m); n != 1 {
		t.Fatalf("build cache holds %d entries after two reads of one executable, want 1", n)
	}
}
