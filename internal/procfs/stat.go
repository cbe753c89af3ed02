package procfs

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// UserHZ is the kernel's USER_HZ: the unit of the clock-tick fields of
// /proc/PID/stat. Linux fixes it at 100 on every architecture Go supports.
const UserHZ = 100

// Stat is what /proc/PID/stat says.
type Stat struct {
	// PID is the process id.
	PID int
	// Comm is the process name; it may contain spaces and parentheses.
	Comm string
	// State is the one-letter state, e.g. 'S'.
	State byte
	// PPID is the parent's pid.
	PPID int
	// UTime and STime are the user and system CPU time, in clock ticks.
	UTime, STime uint64
	// NumThreads is the number of threads.
	NumThreads int
	// StartTicks is the start time after boot, in clock ticks.
	StartTicks uint64
	// Flags are the kernel's PF_* flags of the task.
	Flags uint64
}

// pfKthread is the kernel's PF_KTHREAD flag: the task is a kernel thread.
const pfKthread = 0x00200000

// KernelThread reports whether the process is a kernel thread (no user
// space: no cmdline, executable or fds worth reading).
func (s Stat) KernelThread() bool { return s.Flags&pfKthread != 0 }

// CPUUser is the user CPU time.
func (s Stat) CPUUser() time.Duration { return ticks(s.UTime) }

// CPUSystem is the system CPU time.
func (s Stat) CPUSystem() time.Duration { return ticks(s.STime) }

// StartTime is the absolute start time given the boot time.
func (s Stat) StartTime(boot time.Time) time.Time { return boot.Add(ticks(s.StartTicks)) }

// ticks converts clock ticks to a duration, saturating at the largest
// duration (about 292 years) rather than overflowing.
func ticks(n uint64) time.Duration {
	const maxSeconds = uint64(math.MaxInt64/time.Second) - 1
	if n/UserHZ > maxSeconds {
		return math.MaxInt64
	}
	return time.Duration(n/UserHZ)*time.Second + time.Duration(n%UserHZ)*(time.Second/UserHZ)
}

// stateNames are the meanings of the one-letter states (fs/proc/array.c).
var stateNames = map[byte]string{
	'R': "running", 'S': "sleeping", 'D': "disk sleep", 'T': "stopped",
	't': "tracing stop", 'X': "dead", 'x': "dead", 'Z': "zombie",
	'P': "parked", 'I': "idle", 'K': "wakekill", 'W': "waking",
}

// StateString is the state and its meaning, e.g. "S (sleeping)".
func StateString(state byte) string {
	if name, ok := stateNames[state]; ok {
		return fmt.Sprintf("%c (%s)", state, name)
	}
	if state == 0 {
		return ""
	}
	return fmt.Sprintf("%c (unknown)", state)
}

// ParseStat parses the contents of /proc/PID/stat. The name is delimited by
// the first '(' and the last ')', since it may contain both.
func ParseStat(data string) (Stat, error) {
	var s Stat
	data = firstLine(data)
	open := strings.IndexByte(data, '(')
	closing := strings.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return s, fmt.Errorf("parse stat: no (comm)")
	}
	pid, err := strconv.ParseUint(strings.TrimSpace(data[:open]), 10, 31)
	if err != nil {
		return s, fmt.Errorf("parse stat: pid: %w", err)
	}
	s.PID = int(pid)
	s.Comm = data[open+1 : closing]
	// rest[0] is field 3 (state) of proc_pid_stat(5).
	rest := strings.Fields(data[closing+1:])
	if len(rest) < 20 {
		return s, fmt.Errorf("parse stat: %d fields after comm, want at least 20", len(rest))
	}
	if len(rest[0]) != 1 {
		return s, fmt.Errorf("parse stat: state %q", rest[0])
	}
	s.State = rest[0][0]
	fields := []struct {
		idx int
		dst any
	}{
		{1, &s.PPID}, {6, &s.Flags}, {11, &s.UTime}, {12, &s.STime}, {17, &s.NumThreads}, {19, &s.StartTicks},
	}
	for _, f := range fields {
		switch dst := f.dst.(type) {
		case *int:
			v, err := strconv.ParseUint(rest[f.idx], 10, 31)
			if err != nil {
				return s, fmt.Errorf("parse stat: field %d: %w", f.idx+3, err)
			}
			*dst = int(v)
		case *uint64:
			v, err := strconv.ParseUint(rest[f.idx], 10, 64)
			if err != nil {
				return s, fmt.Errorf("parse stat: field %d: %w", f.idx+3, err)
			}
			*dst = v
		}
	}
	return s, nil
}

// Stat reads /proc/PID/stat.
func (p FS) Stat(pid int) (Stat, error) {
	data, err := readSmall(p.pidPath(pid, "stat"))
	if err != nil {
		return Stat{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	s, err := ParseStat(string(data))
	if err != nil {
		return Stat{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return s, nil
}

// ParseBootTime finds the btime line of the contents of /proc/stat.
func ParseBootTime(data string) (time.Time, error) {
	return scanBootTime(strings.NewReader(data))
}

// scanBootTime reads /proc/stat from r up to its btime line.
func scanBootTime(r io.Reader) (time.Time, error) {
	var bt time.Time
	errFound := errors.New("found")
	err := scanLines(r, func(line string) error {
		rest, ok := strings.CutPrefix(line, "btime ")
		if !ok {
			return nil
		}
		sec, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		if err != nil || sec < 0 {
			return fmt.Errorf("btime %q: not a time", rest)
		}
		bt = time.Unix(sec, 0).UTC()
		return errFound
	})
	switch {
	case errors.Is(err, errFound):
		return bt, nil
	case err != nil:
		return time.Time{}, err
	}
	return time.Time{}, errors.New("no btime line")
}

// BootTime reads the boot time from /proc/stat.
func (p FS) BootTime() (time.Time, error) {
	name := p.path("stat")
	f, err := openBounded(name)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	bt, err := scanBootTime(f)
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", name, err)
	}
	return bt, nil
}
