package procfs

import (
	"fmt"
	"strconv"
	"strings"
)

// Status is what /proc/PID/status says that stat does not.
type Status struct {
	// RSSBytes is VmRSS; 0 for kernel threads.
	RSSBytes uint64
	// PeakRSSBytes is VmHWM.
	PeakRSSBytes uint64
	// UID and GID are the real user and group ids.
	UID, GID uint32
	// Threads is the number of threads.
	Threads int
}

// ParseStatus parses the contents of /proc/PID/status. Unknown keys are
// ignored; a known key with a malformed value is an error.
func ParseStatus(data string) (Status, error) {
	var s Status
	err := scanLines(strings.NewReader(data), func(line string) error {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil
		}
		fields := strings.Fields(val)
		var err error
		switch key {
		case "VmRSS":
			s.RSSBytes, err = parseKB(fields)
		case "VmHWM":
			s.PeakRSSBytes, err = parseKB(fields)
		case "Uid":
			s.UID, err = parseID(fields)
		case "Gid":
			s.GID, err = parseID(fields)
		case "Threads":
			if len(fields) != 1 {
				err = fmt.Errorf("want one value")
				break
			}
			s.Threads, err = strconv.Atoi(fields[0])
			if err == nil && s.Threads < 0 {
				err = fmt.Errorf("negative")
			}
		}
		if err != nil {
			return fmt.Errorf("parse status: %s %q: %w", key, strings.TrimSpace(val), err)
		}
		return nil
	})
	return s, err
}

// parseKB parses "1234 kB" into bytes.
func parseKB(fields []string) (uint64, error) {
	if len(fields) != 2 || fields[1] != "kB" {
		return 0, fmt.Errorf("want \"N kB\"")
	}
	v, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return 0, err
	}
	if v > (1<<64-1)/1024 {
		return 0, fmt.Errorf("overflow")
	}
	return v * 1024, nil
}

// parseID parses the real id, the first of "real effective saved fs".
func parseID(fields []string) (uint32, error) {
	if len(fields) == 0 {
		return 0, fmt.Errorf("no value")
	}
	v, err := strconv.ParseUint(fields[0], 10, 32)
	return uint32(v), err
}

// Status reads /proc/PID/status.
func (p FS) Status(pid int) (Status, error) {
	data, err := readSmall(p.pidPath(pid, "status"))
	if err != nil {
		return Status{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	s, err := ParseStatus(string(data))
	if err != nil {
		return Status{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return s, nil
}

// Limit is one resource limit; 0 means unlimited.
type Limit struct {
	Soft, Hard uint64
}

// Limits are the rows of /proc/PID/limits by name, e.g. LimitOpenFiles.
type Limits map[string]Limit

// LimitOpenFiles names RLIMIT_NOFILE in /proc/PID/limits.
const LimitOpenFiles = "Max open files"

// ParseLimits parses the contents of /proc/PID/limits. Each row is a name
// of one or more words, the soft and hard values ("unlimited" is 0), and
// an optional unit.
func ParseLimits(data string) (Limits, error) {
	l := Limits{}
	err := scanLines(strings.NewReader(data), func(line string) error {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] == "Limit" {
			return nil // blank or header
		}
		i := 0
		for i < len(fields) && !isLimitValue(fields[i]) {
			i++
		}
		if i == 0 || i+2 > len(fields) || !isLimitValue(fields[i+1]) {
			return fmt.Errorf("parse limits: row %q", line)
		}
		name := strings.Join(fields[:i], " ")
		soft, err := parseLimitValue(fields[i])
		if err != nil {
			return fmt.Errorf("parse limits: %s: %w", name, err)
		}
		hard, err := parseLimitValue(fields[i+1])
		if err != nil {
			return fmt.Errorf("parse limits: %s: %w", name, err)
		}
		l[name] = Limit{Soft: soft, Hard: hard}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// isLimitValue reports whether f is a number or "unlimited".
func isLimitValue(f string) bool {
	if f == "unlimited" {
		return true
	}
	_, err := strconv.ParseUint(f, 10, 64)
	return err == nil
}

// parseLimitValue parses a number, with "unlimited" as 0.
func parseLimitValue(f string) (uint64, error) {
	if f == "unlimited" {
		return 0, nil
	}
	return strconv.ParseUint(f, 10, 64)
}

// Limits reads /proc/PID/limits.
func (p FS) Limits(pid int) (Limits, error) {
	data, err := readSmall(p.pidPath(pid, "limits"))
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	l, err := ParseLimits(string(data))
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return l, nil
}
