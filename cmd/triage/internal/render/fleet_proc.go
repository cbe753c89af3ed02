package render

import (
	"fmt"
	"io"
	"time"

	"github.com/triage-sh/triage/client/fleet"
)

// FleetProcs writes one row per pod of its app process, the odd values
// highlighted. CPU is the average number of cores used since the process
// started (CPU time over uptime); MEMORY is the cgroup's usage and its
// share of the limit.
func FleetProcs(w io.Writer, rows []fleet.ProcRow, st Style) error {
	ew := &errWriter{w: w}
	if len(rows) == 0 {
		fmt.Fprintln(ew, "no pod answered")
		return ew.err
	}
	pods := make([]string, len(rows))
	for i, r := range rows {
		pods[i] = r.Pod
	}
	name := fleet.ShortNames(pods)
	t := NewTable("POD", "PID", "COMMAND", "RSS", "THREADS", "FDS", "CPU", "UPTIME", "RESTARTS", "OOM", "MEMORY").AlignRight(1, 3, 4, 5, 6, 7, 8, 9)
	odd := 0
	for _, r := range rows {
		if r.Note != "" {
			t.Row(name(r.Pod), "-", C(Yellow, Truncate(r.Note, 18)))
			continue
		}
		if len(r.Outliers) > 0 {
			odd++
		}
		cmd := r.Command
		if r.Self {
			cmd += " (sidecar)"
		}
		fds := "?"
		if r.FDs >= 0 {
			fds = fmt.Sprint(r.FDs)
			if r.FDLimit > 0 {
				fds += fmt.Sprintf("/%d", r.FDLimit)
			}
		}
		cpu := "-"
		if r.CPU > 0 {
			cpu = fmt.Sprintf("%.2f", r.CPUCores)
		}
		uptime := "-"
		if r.Uptime > 0 {
			uptime = Duration(r.Uptime.Truncate(time.Second))
		}
		restarts, ooms := "-", "-"
		if r.Restarts != nil {
			restarts = fmt.Sprint(*r.Restarts)
		}
		if r.OOMKills != nil {
			ooms = fmt.Sprint(*r.OOMKills)
		}
		mem := "-"
		if r.MemoryBytes > 0 {
			mem = Bytes(r.MemoryBytes)
			if r.MemoryLimitBytes > 0 {
				mem += fmt.Sprintf(" %d%%", 100*r.MemoryBytes/r.MemoryLimitBytes)
			}
		}
		t.Row(oddIf(st, len(r.Outliers) > 0, name(r.Pod)), r.Pid, Truncate(cmd, 16),
			oddIf(st, r.Odd(fleet.ColRSS), Bytes(r.RSSBytes)), oddIf(st, r.Odd(fleet.ColThreads), fmt.Sprint(r.Threads)),
			oddIf(st, r.Odd(fleet.ColFDs), fds), cpu, uptime,
			oddIf(st, r.Odd(fleet.ColRestarts), restarts), oddIf(st, r.Odd(fleet.ColOOMKills), ooms), oddIf(st, r.Odd(fleet.ColMemory), mem))
	}
	t.Indent("").Write(ew, st)
	if odd > 0 {
		fmt.Fprintf(ew, "%s (marked): far above the other pods, at 90%% of a limit, or restarted where the others were not\n",
			Plural(odd, "odd pod", "odd pods"))
	}
	return ew.err
}
