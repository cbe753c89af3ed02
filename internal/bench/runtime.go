package bench

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The runtime benchmarks (./runtimereport) keep their own README section, so
// they can run apart from ./report.
const (
	RuntimeMarkerStart = "<!-- bench-runtime:start -->"
	RuntimeMarkerEnd   = "<!-- bench-runtime:end -->"
)

// UpsertRuntimeSection puts body between RuntimeMarkerStart and
// RuntimeMarkerEnd in doc, adding the pair after the main bench table (or at
// the end) when neither is there (see UpsertSection).
func UpsertRuntimeSection(doc, body string) (string, error) {
	return UpsertSection(doc, RuntimeMarkerStart, RuntimeMarkerEnd, body, MarkerEnd)
}

// CPUTicks is a process's CPU time so far in clock ticks (utime + stime from
// /proc/PID/stat, threads that exited included).
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatTicks(string(b))
}

// ClockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const ClockTick = 10_000_000 // nanoseconds

// ParseStatTicks returns utime + stime (fields 14 and 15) of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and may
// hold spaces and parentheses itself, so fields are counted from the last ')'.
func ParseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')' after the command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	var total int64
	for _, s := range f[11:13] { // fields 14 and 15
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: %w", err)
		}
		total += v
	}
	return total, nil
}

// Median returns the middle value of xs (the upper middle for an even
// count), or 0 for none. xs is not modified.
func Median[T int64 | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Met formats a goal's outcome for a table's goal column.
func Met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}
