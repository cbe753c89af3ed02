package gops

import (
	"fmt"
	"strconv"
	"strings"
)

// Stats are the runtime counters a gops agent reports.
type Stats struct {
	// Goroutines is runtime.NumGoroutine().
	Goroutines int
	// OSThreads is the number of threads the runtime has created (pprof's
	// threadcreate count), not the number alive now.
	OSThreads int
	// GOMAXPROCS is runtime.GOMAXPROCS(0).
	GOMAXPROCS int
	// NumCPU is runtime.NumCPU().
	NumCPU int
}

// parseStats parses the agent's stats reply: "name: value" lines for
// "goroutines", "OS threads", "GOMAXPROCS" and "num CPU", all required.
// Unknown lines are ignored, so that a newer agent's additions do not break it.
func parseStats(s string) (Stats, error) {
	var st Stats
	fields := map[string]*int{
		"goroutines": &st.Goroutines,
		"OS threads": &st.OSThreads,
		"GOMAXPROCS": &st.GOMAXPROCS,
		"num CPU":    &st.NumCPU,
	}
	for line := range strings.Lines(s) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		p, known := fields[name]
		if !known {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil || n < 0 {
			return Stats{}, fmt.Errorf("%w: %s: %q is not a count", ErrBadReply, name, strings.TrimSpace(value))
		}
		*p = n
		delete(fields, name) // a repeated name is ignored after the first
	}
	if len(fields) > 0 {
		missing := make([]string, 0, len(fields))
		for _, name := range []string{"goroutines", "OS threads", "GOMAXPROCS", "num CPU"} {
			if _, ok := fields[name]; ok {
				missing = append(missing, name)
			}
		}
		return Stats{}, fmt.Errorf("%w: stats without %s: %q", ErrBadReply, strings.Join(missing, ", "), truncate(s))
	}
	return st, nil
}

// parseSetGCPercent parses the agent's reply to SetGCPercent,
// "New GC percent set to N. Previous value was P.\n", checks N and returns P.
func parseSetGCPercent(s string, want int) (int, error) {
	var set, prev int
	if _, err := fmt.Sscanf(s, "New GC percent set to %d. Previous value was %d.", &set, &prev); err != nil {
		return 0, fmt.Errorf("%w: %q: %v", ErrBadReply, truncate(s), err)
	}
	if set != want {
		return 0, fmt.Errorf("%w: asked for GC percent %d, agent set %d", ErrBadReply, want, set)
	}
	return prev, nil
}
