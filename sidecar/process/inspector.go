// Package process is the ProcessService capability: the state of the
// processes the sidecar can see in /proc, read by internal/procfs.
//
// Inspector turns procfs results into API messages and is reused by the
// explain capability; service.go is the thin gRPC layer.
package process

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/procfs"
	"github.com/triage-sh/triage/internal/redact"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Inspector reads processes and returns them as API messages.
type Inspector struct {
	fs     procfs.FS
	now    func() time.Time
	builds buildCache
}

// NewInspector returns an Inspector on a proc root and a cgroup v2 root;
// empty strings mean "/proc" and "/sys/fs/cgroup".
func NewInspector(procRoot, cgroupRoot string) *Inspector {
	return &Inspector{fs: procfs.New(procRoot, cgroupRoot), now: time.Now}
}

// SelfPID is the sidecar's own pid as seen in the proc root: the target of
// <procRoot>/self, else os.Getpid().
func (in *Inspector) SelfPID() int {
	if pid, err := in.fs.Self(); err == nil {
		return pid
	}
	return os.Getpid()
}

// Get returns everything readable about pid; pid 0 is the sidecar itself.
// Parts that cannot be read are listed in Process.Unavailable. The error
// wraps procfs.ErrNotFound when pid does not exist.
func (in *Inspector) Get(pid int, includeSockets bool) (*triagev1.Process, error) {
	return in.get(pid, includeSockets, false)
}

// Facts is Get without the socket tables, for explain's checks, which do
// not look at sockets: reading every TCP and UDP table for every process is
// most of what inspecting a process costs.
func (in *Inspector) Facts(pid int) (*triagev1.Process, error) { return in.get(pid, false, true) }

func (in *Inspector) get(pid int, includeSockets, skipSockets bool) (*triagev1.Process, error) {
	if pid < 0 {
		return nil, fmt.Errorf("pid %d: negative", pid)
	}
	self := in.SelfPID()
	if pid == 0 {
		pid = self
	}
	p, err := in.fs.ProcessWith(pid, procfs.ReadOptions{SkipSockets: skipSockets, GoBuild: in.builds.reader(in.fs)})
	if err != nil {
		return nil, fmt.Errorf("get process: %w", err)
	}
	now := in.now()
	out := &triagev1.Process{
		Pid:        int32(p.PID),
		Ppid:       int32(p.Stat.PPID),
		Command:    p.Stat.Comm,
		Cmdline:    p.Cmdline,
		Executable: p.Executable,
		State:      procfs.StateString(p.Stat.State),
		Threads:    int32(p.Stat.NumThreads),
		CpuUser:    durationpb.New(p.Stat.CPUUser()),
		CpuSystem:  durationpb.New(p.Stat.CPUSystem()),
		Self:       p.PID == self,
		Go:         goBuild(p.Go),
		Fds:        fds(p.FDs, p.Limits),
		Sockets:    sockets(p.Sockets, includeSockets),
		Cgroup:     cgroup(p.Cgroup),
	}
	if !p.StartTime.IsZero() {
		out.StartTime = timestamppb.New(p.StartTime)
		out.Uptime = durationpb.New(uptime(now, p.StartTime))
	}
	if p.Status != nil {
		out.RssBytes = p.Status.RSSBytes
		out.PeakRssBytes = p.Status.PeakRSSBytes
		out.Uid = p.Status.UID
		out.Gid = p.Status.GID
		if p.Status.Threads > 0 {
			out.Threads = int32(p.Status.Threads)
		}
	}
	for _, v := range p.Environ {
		value, redacted := redact.Value(v.Name, v.Value)
		out.Environment = append(out.Environment, &triagev1.EnvVar{Name: v.Name, Value: value, Redacted: redacted})
	}
	for _, u := range p.Unavailable {
		out.Unavailable = append(out.Unavailable, &triagev1.Unavailable{Field: u.Field, Reason: u.Reason})
	}
	return out, nil
}

// List summarises every visible user-space process, ordered by pid, and
// counts the kernel threads it left out (seen only in the host's PID
// namespace). A process that exits or cannot be read while listing is left
// out; only an unreadable proc root fails the list.
func (in *Inspector) List() (procs []*triagev1.ProcessSummary, kernelThreads int, err error) {
	pids, err := in.fs.PIDs()
	if err != nil {
		return nil, 0, fmt.Errorf("list processes: %w", err)
	}
	boot, err := in.fs.BootTime()
	if err != nil {
		boot = time.Time{} // uptimes are left out
	}
	self := in.SelfPID()
	now := in.now()
	out := make([]*triagev1.ProcessSummary, 0, len(pids))
	for _, pid := range pids {
		s, err := in.fs.Summary(pid, boot)
		if err != nil {
			continue // exited, or its stat is unreadable
		}
		if s.Stat.KernelThread() {
			kernelThreads++
			continue
		}
		ps := &triagev1.ProcessSummary{
			Pid:      int32(s.PID),
			Ppid:     int32(s.Stat.PPID),
			Command:  s.Stat.Comm,
			Cmdline:  s.Cmdline,
			State:    procfs.StateString(s.Stat.State),
			RssBytes: s.RSSBytes,
			Threads:  int32(s.Stat.NumThreads),
			Fds:      int32(min(s.FDs, 1<<31-1)),
			Self:     s.PID == self,
		}
		if !s.StartTime.IsZero() {
			ps.Uptime = durationpb.New(uptime(now, s.StartTime))
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	return out, kernelThreads, nil
}

// IsNotFound reports whether err says the process does not exist.
func IsNotFound(err error) bool { return errors.Is(err, procfs.ErrNotFound) }

// uptime is now - start, never negative (boot time is whole seconds).
func uptime(now, start time.Time) time.Duration {
	return max(now.Sub(start), 0)
}

// fds converts descriptor counts and the open-files limit.
func fds(f *procfs.FDs, l procfs.Limits) *triagev1.FileDescriptors {
	if f == nil && l == nil {
		return nil
	}
	out := &triagev1.FileDescriptors{}
	if f != nil {
		out.Open = uint32(f.Open)
		out.ByKind = make(map[string]uint32, len(f.ByKind))
		for k, v := range f.ByKind {
			out.ByKind[k] = uint32(v)
		}
	}
	if lim, ok := l[procfs.LimitOpenFiles]; ok {
		out.SoftLimit, out.HardLimit = lim.Soft, lim.Hard
	}
	return out
}

// sockets converts socket counts, and the list when asked.
func sockets(s *procfs.Sockets, list bool) *triagev1.Sockets {
	if s == nil {
		return nil
	}
	out := &triagev1.Sockets{
		TcpByState: make(map[string]uint32, len(s.TCPByState)),
		Udp:        uint32(s.UDP),
		Unix:       uint32(s.Unix),
		Other:      uint32(s.Other),
	}
	for k, v := range s.TCPByState {
		out.TcpByState[k] = uint32(v)
	}
	if list {
		for _, so := range s.List {
			out.Sockets = append(out.Sockets, &triagev1.Socket{
				Protocol: so.Protocol, LocalAddress: so.LocalAddress, RemoteAddress: so.RemoteAddress,
				State: so.State, Inode: so.Inode, TxQueue: so.TxQueue, RxQueue: so.RxQueue,
			})
		}
	}
	return out
}

// cgroup converts the cgroup v2 facts.
func cgroup(c *procfs.Cgroup) *triagev1.Cgroup {
	if c == nil {
		return nil
	}
	out := &triagev1.Cgroup{
		Path:               c.Path,
		MemoryCurrentBytes: c.MemoryCurrent,
		MemoryMaxBytes:     c.MemoryMax,
		MemoryPeakBytes:    c.MemoryPeak,
		MemoryEvents:       c.MemoryEvents,
		CpuQuotaCores:      c.CPUQuotaCores,
		CpuMax:             c.CPUMax,
		CpuStat:            c.CPUStat,
		PidsCurrent:        c.PIDsCurrent,
		PidsMax:            c.PIDsMax,
	}
	for _, p := range c.Pressure {
		out.Pressure = append(out.Pressure, &triagev1.Pressure{Resource: p.Resource, Some: psiLine(p.Some), Full: psiLine(p.Full)})
	}
	return out
}

// psiLine converts one PSI line.
func psiLine(l *procfs.PSILine) *triagev1.PressureLine {
	if l == nil {
		return nil
	}
	return &triagev1.PressureLine{Avg10: l.Avg10, Avg60: l.Avg60, Avg300: l.Avg300, TotalUsec: l.TotalUsec}
}

// goBuild converts Go build information.
func goBuild(b *debug.BuildInfo) *triagev1.GoBuild {
	if b == nil {
		return nil
	}
	out := &triagev1.GoBuild{GoVersion: b.GoVersion, Path: b.Path, Main: goModule(&b.Main)}
	for _, d := range b.Deps {
		out.Deps = append(out.Deps, goModule(d))
	}
	if len(b.Settings) > 0 {
		out.Settings = make(map[string]string, len(b.Settings))
		for _, s := range b.Settings {
			out.Settings[s.Key] = s.Value
		}
	}
	return out
}

// goModule converts a module, following one level of replacement.
func goModule(m *debug.Module) *triagev1.GoModule {
	if m == nil || (m.Path == "" && m.Version == "") {
		return nil
	}
	out := &triagev1.GoModule{Path: m.Path, Version: m.Version, Sum: m.Sum}
	if m.Replace != nil {
		out.Replace = goModule(m.Replace)
	}
	return out
}
