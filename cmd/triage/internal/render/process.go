package render

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// cmdlineWidth bounds the command line column of process tables.
const cmdlineWidth = 60

// Processes writes the process list as a table, the sidecar's own marked.
func Processes(w io.Writer, r *triagev1.ListProcessesResponse, st Style) error {
	ew := &errWriter{w: w}
	if len(r.GetProcesses()) == 0 {
		fmt.Fprintln(ew, "no processes visible")
		return ew.err
	}
	processTable(r.GetProcesses()).Indent("").Write(ew, st)
	if n := r.GetKernelThreads(); n > 0 {
		fmt.Fprintf(ew, "(%d kernel threads not shown: the sidecar shares the host's PID namespace)\n", n)
	}
	return ew.err
}

// processTable is the table of process summaries shared by proc and explain.
func processTable(ps []*triagev1.ProcessSummary) *Table {
	t := NewTable("PID", "PPID", "COMMAND", "STATE", "UPTIME", "RSS", "THREADS", "FDS", "CMDLINE").AlignRight(0, 1, 5, 6, 7)
	for _, p := range ps {
		cmd := p.GetCommand()
		if p.GetSelf() {
			cmd += " (sidecar)"
		}
		fds := "?"
		if p.GetFds() >= 0 {
			fds = fmt.Sprint(p.GetFds())
		}
		uptime := "-"
		if p.GetUptime() != nil {
			uptime = Duration(p.GetUptime().AsDuration().Truncate(time.Second))
		}
		t.Row(p.GetPid(), p.GetPpid(), cmd, p.GetState(), uptime, Bytes(p.GetRssBytes()), p.GetThreads(), fds,
			Truncate(strings.Join(p.GetCmdline(), " "), cmdlineWidth))
	}
	return t
}

// ProcessOptions choose the optional parts of the process view.
type ProcessOptions struct {
	// Deps lists the Go module dependencies, not only their number.
	Deps bool
}

// Process writes everything known about one process, section by section.
// A part the server could not read is shown in its section as
// "unavailable: reason"; its other parts still show.
func Process(w io.Writer, p *triagev1.Process, o ProcessOptions, st Style) error {
	ew := &errWriter{w: w}
	u := newUnavailable(p.GetUnavailable())
	processOverview(ew, p, u, st)
	fdsSection(ew, p.GetFds(), u, st)
	socketsSection(ew, p.GetSockets(), u, st)
	cgroupSection(ew, p.GetCgroup(), u, st)
	goSection(ew, p.GetGo(), o, u, st)
	envSection(ew, p.GetEnvironment(), u, st)
	if rest := u.rest(); len(rest) > 0 {
		Section(ew, st, false, "ALSO UNAVAILABLE")
		t := NewTable()
		for _, x := range rest {
			t.Row(x.GetField(), C(Yellow, Unavailable(x.GetReason())))
		}
		t.Write(ew, st)
	}
	return ew.err
}

// unavailable hands out the Unavailable entries to the sections that show
// them, and keeps the rest for the end.
type unavailable struct {
	all  []*triagev1.Unavailable
	used []bool
}

func newUnavailable(all []*triagev1.Unavailable) *unavailable {
	return &unavailable{all: all, used: make([]bool, len(all))}
}

// take returns the entries whose field is one of names, or under one
// ("cgroup" takes "cgroup.memory.max").
func (u *unavailable) take(names ...string) []*triagev1.Unavailable {
	var out []*triagev1.Unavailable
	for i, x := range u.all {
		if u.used[i] {
			continue
		}
		for _, n := range names {
			if x.GetField() == n || strings.HasPrefix(x.GetField(), n+".") {
				u.used[i] = true
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// rest returns the entries no section took.
func (u *unavailable) rest() []*triagev1.Unavailable {
	var out []*triagev1.Unavailable
	for i, x := range u.all {
		if !u.used[i] {
			out = append(out, x)
		}
	}
	return out
}

// addUnavailable adds one row per entry to a key/value table: the field
// (without prefix) and "unavailable: reason".
func addUnavailable(t *Table, xs []*triagev1.Unavailable, prefix string) {
	for _, x := range xs {
		name := strings.TrimPrefix(x.GetField(), prefix)
		if name == "" || name == strings.TrimSuffix(prefix, ".") {
			name = "all"
		}
		t.Row(name, C(Yellow, Unavailable(x.GetReason())))
	}
}

func processOverview(w io.Writer, p *triagev1.Process, u *unavailable, st Style) {
	title := fmt.Sprintf("PROCESS %d %s", p.GetPid(), p.GetCommand())
	if p.GetSelf() {
		title += " (the sidecar itself)"
	}
	Section(w, st, true, title)
	t := NewTable()
	miss := func(field string) (string, bool) {
		if xs := u.take(field); len(xs) > 0 {
			return Unavailable(xs[0].GetReason()), true
		}
		return "", false
	}
	cmdline := strings.Join(p.GetCmdline(), " ")
	if s, ok := miss("cmdline"); ok {
		cmdline = strings.TrimSpace(cmdline + " (" + s + ")")
	}
	t.Row("cmdline", cmdline)
	exe := p.GetExecutable()
	if s, ok := miss("executable"); ok {
		exe = s
	}
	t.Row("executable", exe)
	if s, ok := miss("stat"); ok {
		t.Row("state", C(Yellow, s))
	} else {
		t.Row("state", p.GetState())
		t.Row("ppid", p.GetPpid())
		if p.GetUptime() != nil {
			t.Row("uptime", fmt.Sprintf("%s (started %s)", Duration(p.GetUptime().AsDuration().Truncate(time.Second)), Timestamp(p.GetStartTime().AsTime())))
		}
		t.Row("threads", p.GetThreads())
		if p.GetCpuUser() != nil || p.GetCpuSystem() != nil {
			t.Row("cpu time", fmt.Sprintf("user %s, system %s", Duration(p.GetCpuUser().AsDuration()), Duration(p.GetCpuSystem().AsDuration())))
		}
	}
	if s, ok := miss("status"); ok {
		t.Row("memory", C(Yellow, s))
	} else {
		t.Row("memory", fmt.Sprintf("RSS %s, peak %s", Bytes(p.GetRssBytes()), Bytes(p.GetPeakRssBytes())))
		t.Row("uid/gid", fmt.Sprintf("%d/%d", p.GetUid(), p.GetGid()))
	}
	t.Write(w, st)
}

func fdsSection(w io.Writer, f *triagev1.FileDescriptors, u *unavailable, st Style) {
	Section(w, st, false, "FILE DESCRIPTORS")
	t := NewTable()
	xs := u.take("fds", "limits")
	if f != nil {
		open := Cell{Text: fmt.Sprint(f.GetOpen())}
		if soft := f.GetSoftLimit(); soft > 0 {
			share := float64(f.GetOpen()) / float64(soft)
			open.Text = fmt.Sprintf("%d of %d (%s)", f.GetOpen(), soft, Percent(float64(f.GetOpen()), float64(soft)))
			switch {
			case share >= 0.9:
				open.Color = Red
			case share >= 0.75:
				open.Color = Yellow
			}
		} else {
			open.Text += " (no limit)"
		}
		t.Row("open", open)
		if hard := f.GetHardLimit(); hard > 0 {
			t.Row("hard limit", hard)
		}
		if len(f.GetByKind()) > 0 {
			t.Row("by kind", countsByCount(f.GetByKind()))
		}
	}
	addUnavailable(t, xs, "")
	if t.Len() == 0 {
		t.Row("open", "not reported")
	}
	t.Write(w, st)
}

// countsByCount renders a map of counts as "socket 5, file 3", largest first.
func countsByCount[V uint32 | uint64](m map[string]V) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func socketsSection(w io.Writer, s *triagev1.Sockets, u *unavailable, st Style) {
	Section(w, st, false, "SOCKETS")
	t := NewTable()
	xs := u.take("sockets")
	if s != nil {
		tcp := countsByCount(s.GetTcpByState())
		if tcp == "" {
			tcp = "none"
		}
		t.Row("tcp", tcp)
		t.Row("udp", s.GetUdp())
		t.Row("unix", s.GetUnix())
		if s.GetOther() > 0 {
			t.Row("other", s.GetOther())
		}
	}
	addUnavailable(t, xs, "")
	if t.Len() == 0 {
		t.Row("tcp", "not reported")
	}
	t.Write(w, st)
	if len(s.GetSockets()) > 0 {
		fmt.Fprintln(w)
		l := NewTable("PROTO", "LOCAL", "REMOTE", "STATE", "RECV-Q", "SEND-Q", "INODE").AlignRight(4, 5, 6)
		for _, k := range s.GetSockets() {
			l.Row(k.GetProtocol(), k.GetLocalAddress(), k.GetRemoteAddress(), k.GetState(), k.GetRxQueue(), k.GetTxQueue(), k.GetInode())
		}
		l.Write(w, st)
	}
}

func cgroupSection(w io.Writer, c *triagev1.Cgroup, u *unavailable, st Style) {
	title := "CGROUP"
	if c.GetPath() != "" {
		title += " " + c.GetPath()
	}
	Section(w, st, false, title)
	t := NewTable()
	whole := u.take("cgroup")
	var own []*triagev1.Unavailable
	for _, x := range whole {
		if x.GetField() == "cgroup" {
			t.Row("cgroup", C(Yellow, Unavailable(x.GetReason())))
		} else {
			own = append(own, x)
		}
	}
	if c == nil {
		if t.Len() == 0 {
			t.Row("cgroup", "not reported")
		}
		t.Write(w, st)
		return
	}
	missing := map[string]string{}
	for _, x := range own {
		missing[strings.TrimPrefix(x.GetField(), "cgroup.")] = x.GetReason()
	}
	// row shows key's value, or "unavailable" when its file (the first of
	// files) is missing; the other files share its fate and are dropped.
	row := func(key string, files []string, value func() any) {
		if r, ok := missing[files[0]]; ok {
			t.Row(key, C(Yellow, Unavailable(r)))
			for _, f := range files {
				delete(missing, f)
			}
			return
		}
		t.Row(key, value())
	}
	row("memory", []string{"memory.current", "memory.max", "memory.peak"}, func() any {
		cur, max := c.GetMemoryCurrentBytes(), c.GetMemoryMaxBytes()
		if r, ok := missing["memory.max"]; ok {
			delete(missing, "memory.max")
			return C(Yellow, Bytes(cur)+" (limit "+Unavailable(r)+")")
		}
		if max == 0 {
			return Bytes(cur) + " (no limit)"
		}
		cell := C(None, fmt.Sprintf("%s of %s (%s)", Bytes(cur), Bytes(max), Percent(float64(cur), float64(max))))
		switch share := float64(cur) / float64(max); {
		case share >= 0.9:
			cell.Color = Red
		case share >= 0.75:
			cell.Color = Yellow
		}
		return cell
	})
	if r, ok := missing["memory.peak"]; ok {
		t.Row("memory peak", C(Yellow, Unavailable(r)))
		delete(missing, "memory.peak")
	} else if c.GetMemoryPeakBytes() > 0 {
		t.Row("memory peak", Bytes(c.GetMemoryPeakBytes()))
	}
	row("oom kills", []string{"memory.events"}, func() any {
		ev := c.GetMemoryEvents()
		kills := ev["oom_kill"]
		s := fmt.Sprintf("%d (memory.max hit %d times, oom %d)", kills, ev["max"], ev["oom"])
		if kills > 0 {
			return C(Red, s)
		}
		return s
	})
	row("cpu.max", []string{"cpu.max"}, func() any {
		if c.GetCpuQuotaCores() == 0 {
			return strings.TrimSpace(c.GetCpuMax() + " (no limit)")
		}
		return fmt.Sprintf("%s (%s cores)", c.GetCpuMax(), trimFloat(c.GetCpuQuotaCores()))
	})
	row("throttled", []string{"cpu.stat"}, func() any {
		cs := c.GetCpuStat()
		periods, throttled := cs["nr_periods"], cs["nr_throttled"]
		if periods == 0 {
			return "0 periods (no quota enforced)"
		}
		s := fmt.Sprintf("%d of %d periods (%s), %s", throttled, periods, Percent(float64(throttled), float64(periods)),
			Duration(time.Duration(cs["throttled_usec"])*time.Microsecond))
		if float64(throttled)/float64(periods) >= 0.1 {
			return C(Yellow, s)
		}
		return s
	})
	if _, ok := missing["pids.current"]; ok || c.GetPidsCurrent() > 0 || c.GetPidsMax() > 0 {
		row("pids", []string{"pids.current", "pids.max"}, func() any {
			pids := fmt.Sprint(c.GetPidsCurrent())
			if c.GetPidsMax() > 0 {
				pids += fmt.Sprintf(" of %d", c.GetPidsMax())
			}
			return pids
		})
	}
	for _, f := range slices.Sorted(maps.Keys(missing)) {
		t.Row(f, C(Yellow, Unavailable(missing[f])))
	}
	t.Write(w, st)
	if len(c.GetPressure()) > 0 {
		fmt.Fprintln(w)
		p := NewTable("PRESSURE", "SOME avg10", "avg60", "avg300", "FULL avg10", "avg60", "avg300").AlignRight(1, 2, 3, 4, 5, 6)
		for _, r := range c.GetPressure() {
			cells := []any{r.GetResource()}
			cells = append(cells, psi(r.GetSome())...)
			cells = append(cells, psi(r.GetFull())...)
			p.Row(cells...)
		}
		p.Write(w, st)
	}
}

// psi is a PSI line's three averages, as percentages.
func psi(l *triagev1.PressureLine) []any {
	if l == nil {
		return []any{"-", "-", "-"}
	}
	out := make([]any, 3)
	for i, v := range []float64{l.GetAvg10(), l.GetAvg60(), l.GetAvg300()} {
		c := C(None, fmt.Sprintf("%.2f%%", v))
		switch {
		case v >= 40:
			c.Color = Red
		case v >= 10:
			c.Color = Yellow
		}
		out[i] = c
	}
	return out
}

// trimFloat formats v with at most two decimals, trailing zeros dropped.
func trimFloat(v float64) string {
	s := strings.TrimRight(fmt.Sprintf("%.2f", v), "0")
	return strings.TrimSuffix(s, ".")
}

func goSection(w io.Writer, g *triagev1.GoBuild, o ProcessOptions, u *unavailable, st Style) {
	Section(w, st, false, "GO BUILD")
	t := NewTable()
	xs := u.take("go", "executable")
	if g == nil {
		addUnavailable(t, xs, "")
		if t.Len() == 0 {
			t.Row("go", "not a Go binary")
		}
		t.Write(w, st)
		return
	}
	t.Row("go", g.GetGoVersion())
	if g.GetPath() != "" {
		t.Row("path", g.GetPath())
	}
	if m := g.GetMain(); m != nil {
		t.Row("main", module(m))
	}
	if rev := g.GetSettings()["vcs.revision"]; rev != "" {
		if g.GetSettings()["vcs.modified"] == "true" {
			rev += " (modified)"
		}
		t.Row("revision", rev)
	}
	if goos, goarch := g.GetSettings()["GOOS"], g.GetSettings()["GOARCH"]; goos != "" {
		t.Row("platform", goos+"/"+goarch)
	}
	deps := Plural(len(g.GetDeps()), "module", "modules")
	if !o.Deps && len(g.GetDeps()) > 0 {
		deps += " (list them with --deps or -o json)"
	}
	t.Row("deps", deps)
	addUnavailable(t, xs, "")
	t.Write(w, st)
	if o.Deps && len(g.GetDeps()) > 0 {
		fmt.Fprintln(w)
		d := NewTable("MODULE", "VERSION", "REPLACED BY")
		for _, m := range g.GetDeps() {
			repl := ""
			if r := m.GetReplace(); r != nil {
				repl = module(r)
			}
			d.Row(m.GetPath(), m.GetVersion(), repl)
		}
		d.Write(w, st)
	}
}

// module is "path version", or "path" alone.
func module(m *triagev1.GoModule) string {
	return strings.TrimSpace(m.GetPath() + " " + m.GetVersion())
}

func envSection(w io.Writer, env []*triagev1.EnvVar, u *unavailable, st Style) {
	Section(w, st, false, "ENVIRONMENT")
	t := NewTable()
	redacted := 0
	for _, e := range env {
		if e.GetRedacted() {
			redacted++
		}
	}
	xs := u.take("environment")
	if len(env) > 0 || len(xs) == 0 {
		t.Row("variables", fmt.Sprintf("%d, %d redacted (values with -o json)", len(env), redacted))
	}
	addUnavailable(t, xs, "")
	t.Write(w, st)
}
