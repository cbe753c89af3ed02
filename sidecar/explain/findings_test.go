package explain

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func goProc(pid int32, goVersion string, cg *triagev1.Cgroup, env ...string) *triagev1.Process {
	p := &triagev1.Process{Pid: pid, Command: "app", Go: &triagev1.GoBuild{GoVersion: goVersion}, Cgroup: cg}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		p.Environment = append(p.Environment, &triagev1.EnvVar{Name: k, Value: v})
	}
	return p
}

func TestChecks(t *testing.T) {
	limited := &triagev1.Cgroup{Path: "/pod/app", MemoryMaxBytes: 512 << 20, MemoryCurrentBytes: 100 << 20, CpuQuotaCores: 2, CpuMax: "200000 100000"}
	tests := []struct {
		name  string
		facts Facts
		want  []string // "severity code pid"
	}{
		{"quiet", Facts{Processes: []*triagev1.Process{goProc(1, "go1.26.0", limited, "GOMEMLIMIT=400MiB")}}, nil},
		{"fds at 85%", Facts{Processes: []*triagev1.Process{{Pid: 7, Fds: &triagev1.FileDescriptors{Open: 870, SoftLimit: 1024}}}},
			[]string{"WARNING fd-near-limit 7"}},
		{"fds at 99%", Facts{Processes: []*triagev1.Process{{Pid: 7, Fds: &triagev1.FileDescriptors{Open: 1020, SoftLimit: 1024}}}},
			[]string{"CRITICAL fd-near-limit 7"}},
		{"fds unlimited", Facts{Processes: []*triagev1.Process{{Pid: 7, Fds: &triagev1.FileDescriptors{Open: 1020}}}}, nil},
		{"memory at 95%, two processes one cgroup", Facts{Processes: []*triagev1.Process{
			{Pid: 1, Cgroup: &triagev1.Cgroup{Path: "/p", MemoryMaxBytes: 100, MemoryCurrentBytes: 95}},
			{Pid: 2, Cgroup: &triagev1.Cgroup{Path: "/p", MemoryMaxBytes: 100, MemoryCurrentBytes: 95}},
		}}, []string{"WARNING memory-near-limit 1"}},
		{"memory unlimited", Facts{Processes: []*triagev1.Process{{Pid: 1, Cgroup: &triagev1.Cgroup{Path: "/p", MemoryCurrentBytes: 1 << 40}}}}, nil},
		{"oom kills", Facts{Processes: []*triagev1.Process{{Pid: 3, Cgroup: &triagev1.Cgroup{Path: "/p", MemoryEvents: map[string]uint64{"oom_kill": 2}}}}},
			[]string{"CRITICAL oom-killed 3"}},
		{"throttled 30%", Facts{Processes: []*triagev1.Process{{Pid: 4, Cgroup: &triagev1.Cgroup{Path: "/p", CpuStat: map[string]uint64{"nr_periods": 100, "nr_throttled": 30}}}}},
			[]string{"CRITICAL cpu-throttled 4"}},
		{"throttled 1%", Facts{Processes: []*triagev1.Process{{Pid: 4, Cgroup: &triagev1.Cgroup{Path: "/p", CpuStat: map[string]uint64{"nr_periods": 100, "nr_throttled": 1}}}}}, nil},
		{"cert expires in 3 days", Facts{Certificates: []*triagev1.Certificate{{Role: "server", NotAfter: timestamppb.New(now.Add(72 * time.Hour))}}},
			[]string{"WARNING cert-expiring 0"}},
		{"cert expired", Facts{Certificates: []*triagev1.Certificate{{Role: "client-ca", NotAfter: timestamppb.New(now.Add(-time.Hour))}}},
			[]string{"CRITICAL cert-expiring 0"}},
		{"cert fine", Facts{Certificates: []*triagev1.Certificate{{Role: "server", NotAfter: timestamppb.New(now.Add(30 * 24 * time.Hour))}}}, nil},
		{"old Go ignores the quota", Facts{NumCPU: 16, Processes: []*triagev1.Process{goProc(5, "go1.22.1", limited, "GOMEMLIMIT=1")}},
			[]string{"WARNING gomaxprocs-above-quota 5"}},
		{"old Go with GOMAXPROCS set", Facts{NumCPU: 16, Processes: []*triagev1.Process{goProc(5, "go1.22.1", limited, "GOMEMLIMIT=1", "GOMAXPROCS=2")}}, nil},
		{"GOMAXPROCS set too high", Facts{NumCPU: 16, Processes: []*triagev1.Process{goProc(5, "go1.26.0", limited, "GOMEMLIMIT=1", "GOMAXPROCS=8")}},
			[]string{"WARNING gomaxprocs-above-quota 5"}},
		{"new Go follows the quota", Facts{NumCPU: 16, Processes: []*triagev1.Process{goProc(5, "go1.25.3", limited, "GOMEMLIMIT=1")}}, nil},
		{"sidecar itself above quota", Facts{Self: Runtime{GOMAXPROCS: 8, MemoryLimit: 1}, Processes: []*triagev1.Process{
			func() *triagev1.Process { p := goProc(9, "go1.26.0", limited); p.Self = true; return p }()}},
			[]string{"WARNING gomaxprocs-above-quota 9"}},
		{"GOMEMLIMIT unset under a limit", Facts{Processes: []*triagev1.Process{goProc(6, "go1.26.0", limited)}},
			[]string{"INFO gomemlimit-unset 6"}},
		{"not Go: no Go findings", Facts{NumCPU: 16, Processes: []*triagev1.Process{{Pid: 8, Cgroup: limited}}}, nil},
		{"sidecar with a memory limit set", Facts{Self: Runtime{GOMAXPROCS: 2, MemoryLimit: 100 << 20}, Processes: []*triagev1.Process{
			func() *triagev1.Process { p := goProc(9, "go1.26.0", limited); p.Self = true; return p }()}}, nil},
		{"sidecar without one", Facts{Self: Runtime{GOMAXPROCS: 2, MemoryLimit: math.MaxInt64}, Processes: []*triagev1.Process{
			func() *triagev1.Process { p := goProc(9, "go1.26.0", limited); p.Self = true; return p }()}},
			[]string{"INFO gomemlimit-unset 9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.facts.Now = now
			got := Run(DefaultChecks(), &tt.facts)
			var gotS []string
			for _, f := range got {
				gotS = append(gotS, strings.TrimPrefix(f.Severity.String(), "SEVERITY_")+" "+f.Code+" "+itoa(f.Pid))
				if f.Message == "" || f.Fix == "" || len(f.Evidence) == 0 {
					t.Errorf("finding %s lacks message, fix or evidence: %+v", f.Code, f)
				}
			}
			if strings.Join(gotS, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("findings %q, want %q", gotS, tt.want)
			}
		})
	}
}

func TestRunOrdersBySeverity(t *testing.T) {
	f := &Facts{Now: now, Processes: []*triagev1.Process{
		{Pid: 1, Fds: &triagev1.FileDescriptors{Open: 900, SoftLimit: 1000}},
		{Pid: 2, Cgroup: &triagev1.Cgroup{Path: "/p", MemoryEvents: map[string]uint64{"oom_kill": 1}}},
	}}
	got := Run(DefaultChecks(), f)
	if len(got) != 2 || got[0].Code != "oom-killed" || got[1].Code != "fd-near-limit" {
		t.Fatalf("order: %v", got)
	}
}

func TestGoMinor(t *testing.T) {
	for v, want := range map[string]int{"go1.26.8": 26, "go1.25rc1": 25, "go1.9": 9, "devel": 0, "go2.0": 0, "": 0} {
		if got := goMinor(v); got != want {
			t.Errorf("goMinor(%q) = %d, want %d", v, got, want)
		}
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
