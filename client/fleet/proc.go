package fleet

import (
	"cmp"
	"slices"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// PodProc is what one pod's process service returned.
type PodProc struct {
	Pod string
	// List is ListProcesses' answer; optional when Process is set.
	List *triagev1.ListProcessesResponse
	// Process is GetProcess for the app's pid (SelectProcess picks it);
	// optional: without it the row has only the list's columns.
	Process *triagev1.Process
	// Restarts is the app container's restart count from the pod's
	// status, when the caller has it.
	Restarts *int32
}

// ProcRow is one pod's app process in a fleet table.
type ProcRow struct {
	Pod     string `json:"pod"`
	Pid     int32  `json:"pid"`
	Command string `json:"command"`
	// Self is true when the only process visible is the sidecar itself
	// (the pod does not share its PID namespace).
	Self     bool   `json:"self,omitempty"`
	RSSBytes uint64 `json:"rss_bytes"`
	Threads  int32  `json:"threads"`
	// FDs is the number of open descriptors, -1 when unreadable; FDLimit
	// is the soft limit, 0 when unknown or unlimited.
	FDs     int64  `json:"fds"`
	FDLimit uint64 `json:"fd_limit,omitempty"`
	// CPU is the user plus system CPU time consumed; CPUCores is CPU over
	// uptime, the average cores used.
	CPU      time.Duration `json:"cpu_ns,omitempty"`
	CPUCores float64       `json:"cpu_cores,omitempty"`
	Uptime   time.Duration `json:"uptime_ns,omitempty"`
	Restarts *int32        `json:"restarts,omitempty"`
	// OOMKills is the cgroup's memory.events oom_kill, when read.
	OOMKills *uint64 `json:"oom_kills,omitempty"`
	// MemoryBytes and MemoryLimitBytes are the cgroup's memory.current and
	// memory.max (0: no limit).
	MemoryBytes      uint64 `json:"memory_bytes,omitempty"`
	MemoryLimitBytes uint64 `json:"memory_limit_bytes,omitempty"`
	// Outliers names the odd columns: rss, threads, fds, memory, restarts,
	// oom_kills.
	Outliers []string `json:"outliers,omitempty"`
	// Note says why the row is empty: no process visible.
	Note string `json:"note,omitempty"`
}

// Odd says whether column is one of the row's outliers.
func (r *ProcRow) Odd(column string) bool { return slices.Contains(r.Outliers, column) }

// Outlier columns of a ProcRow.
const (
	ColRSS      = "rss"
	ColThreads  = "threads"
	ColFDs      = "fds"
	ColMemory   = "memory"
	ColRestarts = "restarts"
	ColOOMKills = "oom_kills"
)

// nearLimit is the share of a limit from which fds and memory are flagged.
const nearLimit = 0.9

// SelectProcess picks the app's process from a listing: the largest
// resident process that is neither the sidecar nor the pause container,
// else the sidecar itself. Nil when the list is empty.
func SelectProcess(l *triagev1.ListProcessesResponse) *triagev1.ProcessSummary {
	var best, self *triagev1.ProcessSummary
	for _, p := range l.GetProcesses() {
		switch {
		case p.GetSelf():
			self = p
		case p.GetCommand() == "pause" && p.GetPid() == 1:
		case best == nil || p.GetRssBytes() > best.GetRssBytes():
			best = p
		}
	}
	if best == nil {
		return self
	}
	return best
}

// ProcRows makes one row per pod, by pod name, and marks the outliers:
// RSS above twice the other pods' median (and 16 MiB more), threads and
// fds by the package's outlier rule, fds or cgroup memory at 90% of
// their limit, and restarts or OOM kills where the other pods have none.
func ProcRows(pods []PodProc) []ProcRow {
	rows := make([]ProcRow, 0, len(pods))
	for _, p := range pods {
		rows = append(rows, procRow(p))
	}
	slices.SortStableFunc(rows, func(a, b ProcRow) int { return cmp.Compare(a.Pod, b.Pod) })

	var present []int
	for i, r := range rows {
		if r.Note == "" {
			present = append(present, i)
		}
	}
	column := func(name string, get func(*ProcRow) (int64, bool), odd func(v int64, o others) bool) {
		var vs []int64
		var idx []int
		for _, i := range present {
			if v, ok := get(&rows[i]); ok {
				vs = append(vs, v)
				idx = append(idx, i)
			}
		}
		s := sortedCopy(vs)
		for k, i := range idx {
			if odd(vs[k], without(s, vs[k])) {
				rows[i].Outliers = append(rows[i].Outliers, name)
			}
		}
	}
	const rssMargin = 16 << 20
	column(ColRSS, func(r *ProcRow) (int64, bool) { return int64(r.RSSBytes), true }, func(v int64, o others) bool {
		return o.n >= 1 && v > 2*o.hi && v-o.hi > rssMargin
	})
	column(ColThreads, func(r *ProcRow) (int64, bool) { return int64(r.Threads), true }, func(v int64, o others) bool {
		return deviation(v, o) == "high"
	})
	column(ColFDs, func(r *ProcRow) (int64, bool) { return r.FDs, r.FDs >= 0 }, func(v int64, o others) bool {
		return deviation(v, o) == "high"
	})
	column(ColRestarts, func(r *ProcRow) (int64, bool) {
		if r.Restarts == nil {
			return 0, false
		}
		return int64(*r.Restarts), true
	}, func(v int64, o others) bool { return v > 0 && o.n >= 1 && o.hi == 0 })
	column(ColOOMKills, func(r *ProcRow) (int64, bool) {
		if r.OOMKills == nil {
			return 0, false
		}
		return int64(*r.OOMKills), true
	}, func(v int64, o others) bool { return v > 0 && o.n >= 1 && o.hi == 0 })
	for _, i := range present {
		r := &rows[i]
		if r.FDLimit > 0 && r.FDs >= 0 && float64(r.FDs) >= nearLimit*float64(r.FDLimit) && !r.Odd(ColFDs) {
			r.Outliers = append(r.Outliers, ColFDs)
		}
		if r.MemoryLimitBytes > 0 && float64(r.MemoryBytes) >= nearLimit*float64(r.MemoryLimitBytes) {
			r.Outliers = append(r.Outliers, ColMemory)
		}
	}
	return rows
}

func procRow(p PodProc) ProcRow {
	r := ProcRow{Pod: p.Pod, FDs: -1, Restarts: p.Restarts}
	if d := p.Process; d != nil {
		r.Pid, r.Command, r.Self = d.GetPid(), d.GetCommand(), d.GetSelf()
		r.RSSBytes, r.Threads = d.GetRssBytes(), d.GetThreads()
		if f := d.GetFds(); f != nil {
			r.FDs, r.FDLimit = int64(f.GetOpen()), f.GetSoftLimit()
		}
		r.Uptime = d.GetUptime().AsDuration()
		r.CPU = d.GetCpuUser().AsDuration() + d.GetCpuSystem().AsDuration()
		if r.Uptime > 0 {
			r.CPUCores = r.CPU.Seconds() / r.Uptime.Seconds()
		}
		if c := d.GetCgroup(); c != nil {
			r.MemoryBytes, r.MemoryLimitBytes = c.GetMemoryCurrentBytes(), c.GetMemoryMaxBytes()
			if n, ok := c.GetMemoryEvents()["oom_kill"]; ok {
				r.OOMKills = &n
			}
		}
		return r
	}
	s := SelectProcess(p.List)
	if s == nil {
		r.Note = "no process visible"
		return r
	}
	r.Pid, r.Command, r.Self = s.GetPid(), s.GetCommand(), s.GetSelf()
	r.RSSBytes, r.Threads, r.FDs = s.GetRssBytes(), s.GetThreads(), int64(s.GetFds())
	r.Uptime = s.GetUptime().AsDuration()
	return r
}
