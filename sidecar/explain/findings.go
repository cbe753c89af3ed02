package explain

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Facts are what the checks look at. Checks read facts and never do I/O, so
// each is a pure function tested with hand-made Facts.
type Facts struct {
	// Now is the time of the explanation.
	Now time.Time
	// Processes are the inspected processes, the sidecar itself first.
	Processes []*triagev1.Process
	// Certificates are the TLS certificates in effect.
	Certificates []*triagev1.Certificate
	// Self is the sidecar's own Go runtime settings.
	Self Runtime
	// NumCPU is the number of CPUs the machine offers; 0 means runtime.NumCPU().
	NumCPU int
}

// Runtime is a Go process's scheduler and memory settings as it runs.
type Runtime struct {
	GOMAXPROCS  int
	MemoryLimit int64 // math.MaxInt64 when unset
}

func selfRuntime() Runtime {
	return Runtime{GOMAXPROCS: runtime.GOMAXPROCS(0), MemoryLimit: debug.SetMemoryLimit(-1)}
}

// Check finds one failure shape. Adding a finding is adding a Check to
// DefaultChecks and a table test beside it.
type Check struct {
	// Code is the findings' stable code.
	Code string
	// Run returns the findings, if any.
	Run func(f *Facts) []*triagev1.Finding
}

// DefaultChecks are the checks explain runs.
func DefaultChecks() []Check {
	return []Check{
		{"oom-killed", oomKilled},
		{"memory-near-limit", memoryNearLimit},
		{"fd-near-limit", fdNearLimit},
		{"cpu-throttled", cpuThrottled},
		{"cert-expiring", certExpiring},
		{"gomaxprocs-above-quota", gomaxprocsAboveQuota},
		{"gomemlimit-unset", gomemlimitUnset},
	}
}

// Run runs checks and orders the findings most severe first, then by code.
func Run(checks []Check, f *Facts) []*triagev1.Finding {
	var out []*triagev1.Finding
	for _, c := range checks {
		for _, fi := range c.Run(f) {
			fi.Code = c.Code
			out = append(out, fi)
		}
	}
	SortFindings(out)
	return out
}

// SortFindings orders findings most severe first, then by code.
func SortFindings(out []*triagev1.Finding) {
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Severity != out[j].Severity {
			return out[i].Severity > out[j].Severity
		}
		return out[i].Code < out[j].Code
	})
}

const (
	info     = triagev1.Severity_SEVERITY_INFO
	warning  = triagev1.Severity_SEVERITY_WARNING
	critical = triagev1.Severity_SEVERITY_CRITICAL
)

// byCgroup calls f once per distinct cgroup, with the pids in it.
func byCgroup(procs []*triagev1.Process, f func(cg *triagev1.Cgroup, pids []int32)) {
	type group struct {
		cg   *triagev1.Cgroup
		pids []int32
	}
	var order []string
	groups := map[string]*group{}
	for _, p := range procs {
		if p.Cgroup == nil {
			continue
		}
		g, ok := groups[p.Cgroup.Path]
		if !ok {
			g = &group{cg: p.Cgroup}
			groups[p.Cgroup.Path] = g
			order = append(order, p.Cgroup.Path)
		}
		g.pids = append(g.pids, p.Pid)
	}
	for _, k := range order {
		f(groups[k].cg, groups[k].pids)
	}
}

func pidList(pids []int32) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

func oomKilled(f *Facts) []*triagev1.Finding {
	var out []*triagev1.Finding
	byCgroup(f.Processes, func(cg *triagev1.Cgroup, pids []int32) {
		if n := cg.MemoryEvents["oom_kill"]; n > 0 {
			out = append(out, &triagev1.Finding{
				Severity: critical, Pid: pids[0],
				Message:  fmt.Sprintf("the kernel OOM-killed %d process(es) in cgroup %s", n, cg.Path),
				Evidence: []string{"memory.events oom_kill=" + strconv.FormatUint(n, 10), "memory.max=" + bytesOrMax(cg.MemoryMaxBytes), "pids=" + pidList(pids)},
				Fix:      "raise the container's memory limit or find what grows (triage proc, heap profile); set GOMEMLIMIT below the limit for Go apps",
			})
		}
	})
	return out
}

func memoryNearLimit(f *Facts) []*triagev1.Finding {
	var out []*triagev1.Finding
	byCgroup(f.Processes, func(cg *triagev1.Cgroup, pids []int32) {
		if cg.MemoryMaxBytes == 0 {
			return
		}
		r := float64(cg.MemoryCurrentBytes) / float64(cg.MemoryMaxBytes)
		if r < 0.9 {
			return
		}
		sev := warning
		if r >= 0.97 {
			sev = critical
		}
		out = append(out, &triagev1.Finding{
			Severity: sev, Pid: pids[0],
			Message:  fmt.Sprintf("memory is at %.0f%% of the cgroup limit in %s", r*100, cg.Path),
			Evidence: []string{"memory.current=" + humanBytes(cg.MemoryCurrentBytes), "memory.max=" + humanBytes(cg.MemoryMaxBytes), "pids=" + pidList(pids)},
			Fix:      "the next allocation burst may be OOM-killed: raise the limit or reduce usage (page cache counts too; check memory.stat)",
		})
	})
	return out
}

func fdNearLimit(f *Facts) []*triagev1.Finding {
	var out []*triagev1.Finding
	for _, p := range f.Processes {
		if p.Fds == nil || p.Fds.SoftLimit == 0 {
			continue
		}
		r := float64(p.Fds.Open) / float64(p.Fds.SoftLimit)
		if r < 0.8 {
			continue
		}
		sev := warning
		if r >= 0.95 {
			sev = critical
		}
		out = append(out, &triagev1.Finding{
			Severity: sev, Pid: p.Pid,
			Message:  fmt.Sprintf("%s (pid %d) has %d of %d file descriptors open (%.0f%%)", p.Command, p.Pid, p.Fds.Open, p.Fds.SoftLimit, r*100),
			Evidence: []string{fmt.Sprintf("open=%d", p.Fds.Open), fmt.Sprintf("soft_limit=%d", p.Fds.SoftLimit), "by_kind=" + kinds(p.Fds.ByKind)},
			Fix:      "look for leaked connections or files (triage proc --pid N shows sockets by state); raise the nofile limit if the load is real",
		})
	}
	return out
}

func cpuThrottled(f *Facts) []*triagev1.Finding {
	var out []*triagev1.Finding
	byCgroup(f.Processes, func(cg *triagev1.Cgroup, pids []int32) {
		periods, throttled := cg.CpuStat["nr_periods"], cg.CpuStat["nr_throttled"]
		if periods < 10 || throttled == 0 {
			return
		}
		r := float64(throttled) / float64(periods)
		if r < 0.05 {
			return
		}
		sev := warning
		if r >= 0.25 {
			sev = critical
		}
		out = append(out, &triagev1.Finding{
			Severity: sev, Pid: pids[0],
			Message: fmt.Sprintf("CPU was throttled in %.0f%% of CFS periods in %s", r*100, cg.Path),
			Evidence: []string{fmt.Sprintf("nr_throttled=%d", throttled), fmt.Sprintf("nr_periods=%d", periods),
				fmt.Sprintf("throttled=%s", time.Duration(cg.CpuStat["throttled_usec"])*time.Microsecond), "cpu.max=" + cg.CpuMax},
			Fix: "latency spikes of up to a CFS period follow: raise the CPU limit, remove it, or lower GOMAXPROCS to the quota",
		})
	})
	return out
}

func certExpiring(f *Facts) []*triagev1.Finding {
	var out []*triagev1.Finding
	for _, c := range f.Certificates {
		if c.NotAfter == nil {
			continue
		}
		left := c.NotAfter.AsTime().Sub(f.Now)
		if left > 7*24*time.Hour {
			continue
		}
		sev, msg := warning, fmt.Sprintf("the %s certificate %s expires in %s", c.Role, c.Subject, humanDuration(left))
		if left <= 0 {
			sev, msg = critical, fmt.Sprintf("the %s certificate %s expired %s ago", c.Role, c.Subject, humanDuration(-left))
		}
		out = append(out, &triagev1.Finding{
			Severity: sev, Message: msg,
			Evidence: []string{"not_after=" + c.NotAfter.AsTime().UTC().Format(time.RFC3339), "path=" + c.Path},
			Fix:      "renew it; the sidecar reloads the file when it changes, no restart needed",
		})
	}
	return out
}

// goMinor parses "go1.24.3" -> 24; 0 when unknown.
func goMinor(v string) int {
	v = strings.TrimPrefix(v, "go")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 || parts[0] != "1" {
		return 0
	}
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i] // "25rc1" -> "25"
	}
	n, _ := strconv.Atoi(digits)
	return n
}

func envValue(p *triagev1.Process, name string) (string, bool) {
	for _, e := range p.Environment {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// effectiveGOMAXPROCS is what a Go process's GOMAXPROCS is, as far as can be
// seen from outside: the sidecar knows its own; for others, the GOMAXPROCS
// variable, else Go 1.25+'s cgroup-aware default, else the CPU count.
func effectiveGOMAXPROCS(p *triagev1.Process, f *Facts, quota float64) (n int, how string) {
	if p.Self {
		return f.Self.GOMAXPROCS, "runtime.GOMAXPROCS(0)"
	}
	if v, ok := envValue(p, "GOMAXPROCS"); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n, "GOMAXPROCS=" + v
		}
	}
	cpus := f.NumCPU
	if cpus == 0 {
		cpus = runtime.NumCPU()
	}
	if goMinor(p.Go.GoVersion) >= 25 {
		return min(cpus, max(2, int(math.Ceil(quota)))), p.Go.GoVersion + " default (cgroup-aware)"
	}
	return cpus, p.Go.GoVersion + " default (CPU count; not cgroup-aware before go1.25)"
}

func gomaxprocsAboveQuota(f *Facts) []*triagev1.Finding {
	var out []*triagev1.Finding
	for _, p := range f.Processes {
		if p.Go == nil || p.Cgroup == nil || p.Cgroup.CpuQuotaCores == 0 {
			continue
		}
		quota := p.Cgroup.CpuQuotaCores
		n, how := effectiveGOMAXPROCS(p, f, quota)
		limit := max(1, int(math.Ceil(quota)))
		if n <= limit || (n == 2 && quota < 2) {
			// Go never goes below 2 by default on a fractional quota; that is not a misconfiguration.
			continue
		}
		out = append(out, &triagev1.Finding{
			Severity: warning, Pid: p.Pid,
			Message:  fmt.Sprintf("%s (pid %d) runs GOMAXPROCS=%d on a %.2g-core CPU quota: its threads will be throttled", p.Command, p.Pid, n, quota),
			Evidence: []string{"gomaxprocs=" + strconv.Itoa(n) + " (" + how + ")", "cpu.max=" + p.Cgroup.CpuMax},
			Fix:      fmt.Sprintf("set GOMAXPROCS=%d, or build with go1.25 or later, which follows the cgroup quota", limit),
		})
	}
	return out
}

func gomemlimitUnset(f *Facts) []*triagev1.Finding {
	var out []*triagev1.Finding
	for _, p := range f.Processes {
		if p.Go == nil || p.Cgroup == nil || p.Cgroup.MemoryMaxBytes == 0 {
			continue
		}
		if p.Self {
			if f.Self.MemoryLimit != math.MaxInt64 {
				continue
			}
		} else if _, ok := envValue(p, "GOMEMLIMIT"); ok {
			continue
		}
		out = append(out, &triagev1.Finding{
			Severity: info, Pid: p.Pid,
			Message:  fmt.Sprintf("%s (pid %d) is a Go program under a %s memory limit without GOMEMLIMIT: the GC does not know the limit", p.Command, p.Pid, humanBytes(p.Cgroup.MemoryMaxBytes)),
			Evidence: []string{"memory.max=" + humanBytes(p.Cgroup.MemoryMaxBytes), "GOMEMLIMIT unset", "go=" + p.Go.GoVersion},
			Fix:      fmt.Sprintf("set GOMEMLIMIT to about 90%% of the limit, e.g. GOMEMLIMIT=%dMiB", p.Cgroup.MemoryMaxBytes*9/10>>20),
		})
	}
	return out
}

func kinds(m map[string]uint32) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, ",")
}

func bytesOrMax(n uint64) string {
	if n == 0 {
		return "max"
	}
	return humanBytes(n)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return d.Round(time.Second).String()
	}
}
