package render

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Hand-made responses for the golden tests. Times are fixed so output
// never depends on the clock.

var fixtureNow = time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC)

func ts(t time.Time) *timestamppb.Timestamp    { return timestamppb.New(t) }
func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func fixtureSummaries() []*triagev1.ProcessSummary {
	return []*triagev1.ProcessSummary{
		{Pid: 1, Ppid: 0, Command: "pause", Cmdline: []string{"/pause"}, State: "S (sleeping)", Uptime: dur(26*time.Hour + 5*time.Minute), RssBytes: 512 << 10, Threads: 1, Fds: -1},
		{Pid: 7, Ppid: 0, Command: "triage-demo", Cmdline: []string{"/app/triage-demo", "--addr", "0.0.0.0:8080", "--config", "/etc/demo/config.yaml", "--verbose"}, State: "S (sleeping)", Uptime: dur(3*time.Hour + 12*time.Minute + 40*time.Second), RssBytes: 47 << 20, Threads: 12, Fds: 980},
		{Pid: 31, Ppid: 0, Command: "triage-sidecar", Cmdline: []string{"/triage-sidecar", "--dev", "/tmp/dev"}, State: "R (running)", Uptime: dur(3*time.Hour + 11*time.Minute), RssBytes: 23<<20 + 300<<10, Threads: 9, Fds: 14, Self: true},
	}
}

func fixtureExplain() *triagev1.ExplainResponse {
	return &triagev1.ExplainResponse{
		Build:    &triagev1.Build{Version: "v0.3.1", Revision: "4f2a9c1e8b7d6a5f", GoVersion: "go1.26.0", Platform: "linux/amd64", Started: ts(fixtureNow.Add(-(3*time.Hour + 11*time.Minute)))},
		Time:     ts(fixtureNow),
		Hostname: "checkout-7d9f8-abcde",
		Settings: []*triagev1.Setting{
			{Name: "addr", Value: "127.0.0.1:7070", Source: triagev1.Source_SOURCE_DEFAULT},
			{Name: "tls-cert", Value: "/tmp/dev/server.pem", Source: triagev1.Source_SOURCE_DEV, Origin: "--dev /tmp/dev"},
			{Name: "audit-log", Value: "/var/log/triage/audit.log", Source: triagev1.Source_SOURCE_FILE, Origin: "/etc/triage.yaml:4"},
			{Name: "max-inflight", Value: "64", Source: triagev1.Source_SOURCE_ENV, Origin: "TRIAGE_MAX_INFLIGHT"},
			{Name: "unix-socket", Value: "", Source: triagev1.Source_SOURCE_FLAG, Origin: "--unix-socket"},
		},
		Auth: &triagev1.Auth{
			Modes:      []string{"mtls", "token"},
			Caller:     &triagev1.Identity{Name: "spiffe://triage.dev/dev/operator", Method: "mtls", Roles: []string{"operator"}, Permissions: []triagev1.Permission{triagev1.Permission_PERMISSION_VIEW, triagev1.Permission_PERMISSION_PROFILE, triagev1.Permission_PERMISSION_CAPTURE, triagev1.Permission_PERMISSION_OPERATE}},
			PolicyFile: "/tmp/dev/policy.yaml",
			Bindings:   1,
		},
		Capabilities: []*triagev1.Capability{
			{Name: "explain", Enabled: true, Reason: "on"},
			{Name: "process", Enabled: true, Reason: "on"},
			{Name: "capture", Reason: "no CAP_NET_RAW", Fix: "grant NET_RAW to the sidecar container"},
		},
		Certificates: []*triagev1.Certificate{
			{Role: "server", Path: "/tmp/dev/server.pem", Subject: "CN=localhost", Sans: []string{"DNS:localhost", "IP:127.0.0.1"}, NotAfter: ts(fixtureNow.Add(89 * 24 * time.Hour)), Serial: "0a1b", Issuer: "CN=triage development CA"},
			{Role: "client-ca", Path: "/tmp/dev/ca.pem", Subject: "CN=triage development CA", NotAfter: ts(fixtureNow.Add(5*24*time.Hour + 3*time.Hour))},
			{Role: "client-ca", Path: "/etc/old-ca.pem", Subject: "CN=old CA", NotAfter: ts(fixtureNow.Add(-50 * time.Hour))},
		},
		Processes: fixtureSummaries(),
		Findings: []*triagev1.Finding{
			{Severity: triagev1.Severity_SEVERITY_CRITICAL, Code: "fd-near-limit", Message: "triage-demo uses 980 of 1024 file descriptors", Evidence: []string{"fds=980", "limit=1024"}, Pid: 7, Fix: "find the leak with `triage proc --pid 7`, or raise the limit (ulimit -n)"},
			{Severity: triagev1.Severity_SEVERITY_WARNING, Code: "cert-expiring", Message: "the client CA expires in 5 days", Evidence: []string{"not_after=2026-03-06T17:00:00Z"}, Fix: "rotate the CA"},
			{Severity: triagev1.Severity_SEVERITY_INFO, Code: "no-shared-pid-namespace", Message: "only the sidecar's own processes are visible"},
		},
	}
}

func fixtureProcess() *triagev1.Process {
	return &triagev1.Process{
		Pid: 7, Ppid: 0, Command: "triage-demo",
		Cmdline:      []string{"/app/triage-demo", "--addr", "0.0.0.0:8080"},
		Executable:   "/app/triage-demo",
		StartTime:    ts(fixtureNow.Add(-(3*time.Hour + 12*time.Minute))),
		Uptime:       dur(3*time.Hour + 12*time.Minute + 400*time.Millisecond),
		State:        "S (sleeping)",
		Threads:      12,
		RssBytes:     47<<20 + 200<<10,
		PeakRssBytes: 61 << 20,
		Uid:          1000, Gid: 1000,
		CpuUser:   dur(83*time.Second + 250*time.Millisecond),
		CpuSystem: dur(4200 * time.Millisecond),
		Fds: &triagev1.FileDescriptors{Open: 980, SoftLimit: 1024, HardLimit: 4096,
			ByKind: map[string]uint32{"socket": 950, "file": 20, "pipe": 4, "anon_inode": 6}},
		Sockets: &triagev1.Sockets{TcpByState: map[string]uint32{"ESTABLISHED": 940, "LISTEN": 1, "CLOSE_WAIT": 9}, Udp: 0, Unix: 0},
		Cgroup: &triagev1.Cgroup{
			Path:               "/kubepods.slice/pod1/app",
			MemoryCurrentBytes: 200 << 20, MemoryMaxBytes: 256 << 20, MemoryPeakBytes: 250 << 20,
			MemoryEvents:  map[string]uint64{"low": 0, "high": 0, "max": 12, "oom": 2, "oom_kill": 2},
			CpuQuotaCores: 0.5, CpuMax: "50000 100000",
			CpuStat: map[string]uint64{"usage_usec": 900000000, "nr_periods": 4000, "nr_throttled": 1200, "throttled_usec": 95000000},
			Pressure: []*triagev1.Pressure{
				{Resource: "cpu", Some: &triagev1.PressureLine{Avg10: 42.5, Avg60: 30.1, Avg300: 12.0}, Full: &triagev1.PressureLine{}},
				{Resource: "memory", Some: &triagev1.PressureLine{Avg10: 1.25}, Full: &triagev1.PressureLine{Avg10: 0.5}},
				{Resource: "io", Some: &triagev1.PressureLine{}},
			},
			PidsCurrent: 14, PidsMax: 1024,
		},
		Go: &triagev1.GoBuild{
			GoVersion: "go1.26.0", Path: "github.com/triage-sh/triage/cmd/triage-demo",
			Main: &triagev1.GoModule{Path: "github.com/triage-sh/triage", Version: "v0.3.1"},
			Deps: []*triagev1.GoModule{
				{Path: "google.golang.org/grpc", Version: "v1.85.0"},
				{Path: "gopkg.in/yaml.v3", Version: "v3.0.1", Replace: &triagev1.GoModule{Path: "../yaml", Version: ""}},
			},
			Settings: map[string]string{"GOOS": "linux", "GOARCH": "amd64", "vcs.revision": "4f2a9c1e", "vcs.modified": "true"},
		},
		Environment: []*triagev1.EnvVar{
			{Name: "HOME", Value: "/home/app"},
			{Name: "DB_PASSWORD", Value: "[redacted]", Redacted: true},
			{Name: "PATH", Value: "/usr/bin"},
		},
	}
}

// fixtureProcessUnavailable is another user's process: most parts unreadable.
func fixtureProcessUnavailable() *triagev1.Process {
	return &triagev1.Process{
		Pid: 1, Command: "pause", Cmdline: []string{"/pause"},
		Uptime: dur(26 * time.Hour), StartTime: ts(fixtureNow.Add(-26 * time.Hour)),
		State: "S (sleeping)", Threads: 1, RssBytes: 512 << 10, PeakRssBytes: 600 << 10,
		Cgroup: &triagev1.Cgroup{Path: "/kubepods.slice/pod1/pause", MemoryCurrentBytes: 1 << 20, CpuMax: "max 100000",
			CpuStat: map[string]uint64{"usage_usec": 1000}},
		Unavailable: []*triagev1.Unavailable{
			{Field: "executable", Reason: "permission denied: run the sidecar as the app's UID"},
			{Field: "go", Reason: "the build information is read through the executable, which is unavailable (see executable)"},
			{Field: "fds", Reason: "permission denied: run the sidecar as the app's UID"},
			{Field: "sockets", Reason: "sockets are found through the descriptor list, which is unavailable (see fds)"},
			{Field: "environment", Reason: "permission denied: run the sidecar as the app's UID"},
			{Field: "cgroup.memory.max", Reason: "memory.max is missing: the memory controller is not enabled for this cgroup"},
			{Field: "cgroup.pressure", Reason: "PSI is disabled in this kernel (boot with psi=1)"},
			{Field: "limits", Reason: "permission denied"},
			{Field: "io", Reason: "permission denied"},
		},
	}
}
