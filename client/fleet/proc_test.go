package fleet

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// appProcess is a realistic GetProcess answer for the app of pod i.
func appProcess(rss uint64, fds uint32, threads int32, oomKills uint64) *triagev1.Process {
	return &triagev1.Process{
		Pid: 7, Command: "shop", State: "S (sleeping)", Threads: threads, RssBytes: rss,
		Uptime:  durationpb.New(2 * time.Hour),
		CpuUser: durationpb.New(30 * time.Minute), CpuSystem: durationpb.New(6 * time.Minute),
		Fds: &triagev1.FileDescriptors{Open: fds, SoftLimit: 1024, HardLimit: 4096},
		Cgroup: &triagev1.Cgroup{MemoryCurrentBytes: rss + 20<<20, MemoryMaxBytes: 512 << 20,
			MemoryEvents: map[string]uint64{"oom": oomKills, "oom_kill": oomKills}},
	}
}

func listing(self bool, procs ...*triagev1.ProcessSummary) *triagev1.ListProcessesResponse {
	l := &triagev1.ListProcessesResponse{Processes: []*triagev1.ProcessSummary{{Pid: 1, Command: "pause", RssBytes: 512 << 10, Threads: 1, Fds: -1}}}
	l.Processes = append(l.Processes, procs...)
	if self {
		l.Processes = append(l.Processes, &triagev1.ProcessSummary{Pid: 31, Command: "triage-sidecar", Self: true, RssBytes: 23 << 20, Threads: 9, Fds: 14})
	}
	return l
}

func i32(v int32) *int32 { return &v }

func TestProcRows(t *testing.T) {
	tests := []struct {
		name string
		pods []PodProc
		want map[string][]string // pod -> outlier columns
		note map[string]string
	}{
		{
			name: "one pod's RSS and fds are odd",
			pods: []PodProc{
				{Pod: "shop/a", Process: appProcess(100<<20, 40, 12, 0), Restarts: i32(0)},
				{Pod: "shop/b", Process: appProcess(110<<20, 42, 12, 0), Restarts: i32(0)},
				{Pod: "shop/c", Process: appProcess(400<<20, 990, 14, 0), Restarts: i32(0)},
				{Pod: "shop/d", Process: appProcess(95<<20, 38, 11, 0), Restarts: i32(0)},
			},
			want: map[string][]string{"shop/c": {ColRSS, ColFDs}},
		},
		{
			name: "restarts and OOM kills where the others have none; memory at its limit",
			pods: []PodProc{
				{Pod: "shop/a", Process: appProcess(100<<20, 40, 12, 0), Restarts: i32(0)},
				{Pod: "shop/b", Process: appProcess(480<<20, 40, 12, 3), Restarts: i32(3)},
				{Pod: "shop/c", Process: appProcess(100<<20, 40, 12, 0), Restarts: i32(0)},
			},
			want: map[string][]string{"shop/b": {ColRSS, ColRestarts, ColOOMKills, ColMemory}},
		},
		{
			name: "list only: the app is picked, the pod without a shared PID namespace shows the sidecar",
			pods: []PodProc{
				{Pod: "shop/a", List: listing(true, &triagev1.ProcessSummary{Pid: 7, Command: "shop", RssBytes: 90 << 20, Threads: 10, Fds: 30})},
				{Pod: "shop/b", List: listing(true, &triagev1.ProcessSummary{Pid: 7, Command: "shop", RssBytes: 95 << 20, Threads: 80, Fds: 31})},
				{Pod: "shop/c", List: listing(true, &triagev1.ProcessSummary{Pid: 7, Command: "shop", RssBytes: 92 << 20, Threads: 10, Fds: -1})},
				{Pod: "shop/d", List: &triagev1.ListProcessesResponse{}},
			},
			want: map[string][]string{"shop/b": {ColThreads}},
			note: map[string]string{"shop/d": "no process visible"},
		},
		{
			name: "two pods alike",
			pods: []PodProc{{Pod: "shop/b", Process: appProcess(100<<20, 40, 12, 0)}, {Pod: "shop/a", Process: appProcess(100<<20, 40, 12, 0)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := ProcRows(tt.pods)
			if len(rows) != len(tt.pods) {
				t.Fatalf("%d rows for %d pods", len(rows), len(tt.pods))
			}
			for i, r := range rows {
				if i > 0 && rows[i-1].Pod >= r.Pod {
					t.Errorf("rows out of order: %s before %s", rows[i-1].Pod, r.Pod)
				}
				if !slices.Equal(r.Outliers, tt.want[r.Pod]) {
					t.Errorf("%s: outliers %v, want %v", r.Pod, r.Outliers, tt.want[r.Pod])
				}
				if r.Note != tt.note[r.Pod] {
					t.Errorf("%s: note %q, want %q", r.Pod, r.Note, tt.note[r.Pod])
				}
				if r.Note == "" && (r.Pid == 0 || r.Command == "" || r.RSSBytes == 0) {
					t.Errorf("%s: empty row %+v", r.Pod, r)
				}
			}
		})
	}
}

func TestProcRowDetail(t *testing.T) {
	rows := ProcRows([]PodProc{{Pod: "shop/a", Process: appProcess(100<<20, 40, 12, 2), Restarts: i32(1)}})
	r := rows[0]
	if r.FDs != 40 || r.FDLimit != 1024 || r.CPU != 36*time.Minute || r.CPUCores != 0.3 || r.Uptime != 2*time.Hour {
		t.Errorf("row %+v: want 40 of 1024 fds, 36m CPU = 0.3 cores over 2h", r)
	}
	if r.OOMKills == nil || *r.OOMKills != 2 || r.MemoryLimitBytes != 512<<20 || r.Restarts == nil || *r.Restarts != 1 {
		t.Errorf("row %+v: want 2 OOM kills, a 512 MiB limit and 1 restart", r)
	}
}

func TestSelectProcess(t *testing.T) {
	app := &triagev1.ProcessSummary{Pid: 7, Command: "shop", RssBytes: 90 << 20}
	helper := &triagev1.ProcessSummary{Pid: 9, Command: "logrotate", RssBytes: 2 << 20}
	tests := []struct {
		name string
		l    *triagev1.ListProcessesResponse
		want int32
	}{
		{"app over pause, helper and sidecar", listing(true, helper, app), 7},
		{"only pause and sidecar: the sidecar", listing(true), 31},
		{"nothing", &triagev1.ListProcessesResponse{}, 0},
		{"nil", nil, 0},
	}
	for _, tt := range tests {
		if got := SelectProcess(tt.l).GetPid(); got != tt.want {
			t.Errorf("%s: pid %d, want %d", tt.name, got, tt.want)
		}
	}
}
