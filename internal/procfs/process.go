package procfs

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// Process is everything the FS could read about one process.
type Process struct {
	// PID is the process id.
	PID int
	// Stat is /proc/PID/stat.
	Stat Stat
	// StartTime is when the process started; zero when unknown.
	StartTime time.Time
	// Status is /proc/PID/status; nil when unreadable.
	Status *Status
	// Cmdline is the command line.
	Cmdline []string
	// Executable is the /proc/PID/exe link.
	Executable string
	// Environ is the initial environment, not redacted.
	Environ []EnvVar
	// Limits are the resource limits; nil when unreadable.
	Limits Limits
	// FDs are the open descriptors; nil when unreadable.
	FDs *FDs
	// Sockets are the TCP, UDP and other sockets; nil when unreadable.
	Sockets *Sockets
	// Cgroup is the cgroup v2 state; nil when unreadable.
	Cgroup *Cgroup
	// Go is the Go build information; nil when not a Go binary or unreadable.
	Go *debug.BuildInfo
	// Unavailable lists what could not be read, and why.
	Unavailable []Unavailable
}

// ReadOptions trim what Process reads.
type ReadOptions struct {
	// SkipSockets leaves out the socket tables (the costliest part: every
	// TCP and UDP table of the process's network namespace is read).
	SkipSockets bool
	// GoBuild, when set, replaces FS.GoBuild, e.g. with a cache keyed by
	// the executable's identity.
	GoBuild func(pid int) (*debug.BuildInfo, error)
}

// Process reads everything about pid. It returns an error wrapping
// ErrNotFound when pid does not exist (or exits before its stat is read);
// any other failure is recorded in Process.Unavailable.
func (p FS) Process(pid int) (*Process, error) { return p.ProcessWith(pid, ReadOptions{}) }

// ProcessWith is Process with options.
func (p FS) ProcessWith(pid int, o ReadOptions) (*Process, error) {
	if err := p.Exists(pid); err != nil {
		return nil, err
	}
	pr := &Process{PID: pid}
	miss := func(field string, err error) {
		pr.Unavailable = append(pr.Unavailable, Unavailable{Field: field, Reason: reason(err)})
	}

	st, err := p.Stat(pid)
	switch {
	case err != nil && isGone(err):
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNotFound)
	case err != nil:
		miss("stat", err)
	default:
		pr.Stat = st
		if boot, err := p.BootTime(); err != nil {
			miss("start_time", err)
		} else {
			pr.StartTime = st.StartTime(boot)
		}
	}

	if s, err := p.Status(pid); err != nil {
		miss("status", err)
	} else {
		pr.Status = &s
	}

	if args, err := p.Cmdline(pid); err != nil {
		miss("cmdline", err)
	} else {
		pr.Cmdline = args.Values
		if args.Truncated {
			pr.Unavailable = append(pr.Unavailable, Unavailable{Field: "cmdline", Reason: fmt.Sprintf("truncated after %d bytes; the rest was not read", MaxArgFile)})
		}
	}

	if env, err := p.Environ(pid); err != nil {
		miss("environment", err)
	} else {
		pr.Environ = env.Vars
		if env.Truncated {
			pr.Unavailable = append(pr.Unavailable, Unavailable{Field: "environment", Reason: fmt.Sprintf("truncated after %d bytes; the rest was not read", MaxArgFile)})
		}
	}

	p.readExecutable(pr, miss, o.GoBuild)

	if l, err := p.Limits(pid); err != nil {
		miss("fds.limit", err)
	} else {
		pr.Limits = l
	}

	if fds, err := p.FDs(pid); err != nil {
		miss("fds", err)
		pr.Unavailable = append(pr.Unavailable, Unavailable{Field: "sockets", Reason: "sockets are found through the descriptor list, which is unavailable (see fds)"})
	} else {
		pr.FDs = &fds
		if fds.Truncated {
			pr.Unavailable = append(pr.Unavailable, Unavailable{Field: "fds", Reason: fmt.Sprintf("more than %d descriptors; only the first %d were classified", MaxFDs, MaxFDs)})
		}
		if !o.SkipSockets {
			if socks, err := p.Sockets(pid, fds.SocketInodes); err != nil {
				miss("sockets", err)
			} else {
				pr.Sockets = &socks
			}
		}
	}

	if cg, err := p.Cgroup(pid); err != nil {
		if errors.Is(err, ErrNoCgroupV2) {
			pr.Unavailable = append(pr.Unavailable, Unavailable{Field: "cgroup", Reason: ErrNoCgroupV2.Error()})
		} else {
			miss("cgroup", err)
		}
	} else {
		pr.Unavailable = append(pr.Unavailable, cg.Unavailable...)
		cg.Unavailable = nil
		pr.Cgroup = &cg
	}
	return pr, nil
}

// readExecutable reads the exe link and the Go build information.
func (p FS) readExecutable(pr *Process, miss func(string, error), goBuild func(int) (*debug.BuildInfo, error)) {
	exe, err := p.Executable(pr.PID)
	if err != nil {
		if isGone(err) {
			// Kernel threads and zombies have no executable.
			pr.Unavailable = append(pr.Unavailable, Unavailable{Field: "executable", Reason: "the process has no executable: it is a kernel thread or a zombie"})
			return
		}
		miss("executable", err)
		pr.Unavailable = append(pr.Unavailable, Unavailable{Field: "go", Reason: "the build information is read through the executable, which is unavailable (see executable)"})
		return
	}
	pr.Executable = exe
	if goBuild == nil {
		goBuild = p.GoBuild
	}
	info, err := goBuild(pr.PID)
	if err != nil {
		miss("go", err)
		return
	}
	pr.Go = info
}

// Summary is one line of a process listing.
type Summary struct {
	// PID is the process id.
	PID int
	// Stat is /proc/PID/stat.
	Stat Stat
	// StartTime is when the process started; zero when unknown.
	StartTime time.Time
	// Cmdline is the command line.
	Cmdline []string
	// RSSBytes is VmRSS.
	RSSBytes uint64
	// FDs is the number of open descriptors, or -1 when unreadable.
	FDs int
}

// Summary reads the few facts of a listing. It returns an error wrapping
// ErrNotFound when pid does not exist, and an error when its stat cannot be
// read; the other parts are best effort.
func (p FS) Summary(pid int, boot time.Time) (*Summary, error) {
	st, err := p.Stat(pid)
	if err != nil {
		if isGone(err) {
			return nil, fmt.Errorf("pid %d: %w", pid, ErrNotFound)
		}
		return nil, err
	}
	s := &Summary{PID: pid, Stat: st, FDs: -1}
	if !boot.IsZero() {
		s.StartTime = st.StartTime(boot)
	}
	if args, err := p.Cmdline(pid); err == nil {
		s.Cmdline = args.Values
	}
	if status, err := p.Status(pid); err == nil {
		s.RSSBytes = status.RSSBytes
	}
	if n, err := p.FDCount(pid); err == nil {
		s.FDs = n
	}
	return s, nil
}
