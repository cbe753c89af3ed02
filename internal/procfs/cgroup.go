package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Cgroup is what the cgroup v2 filesystem says about a process's cgroup.
// A file the kernel does not provide for this cgroup leaves its field zero
// and adds an entry to Unavailable.
type Cgroup struct {
	// Path is the cgroup path relative to the cgroup root, e.g. "/" or
	// "/kubepods.slice/...".
	Path string
	// Dir is the directory read.
	Dir string
	// MemoryCurrent is memory.current in bytes.
	MemoryCurrent uint64
	// MemoryMax is memory.max in bytes; 0 means no limit.
	MemoryMax uint64
	// MemoryPeak is memory.peak in bytes.
	MemoryPeak uint64
	// MemoryEvents are the counters of memory.events (oom, oom_kill, ...).
	MemoryEvents map[string]uint64
	// CPUMax is cpu.max as written, e.g. "max 100000".
	CPUMax string
	// CPUQuotaCores is cpu.max as cores; 0 means no limit.
	CPUQuotaCores float64
	// CPUStat are the counters of cpu.stat.
	CPUStat map[string]uint64
	// Pressure is the PSI of cpu, memory and io, in that order, for the
	// files present.
	Pressure []PSI
	// PIDsCurrent is pids.current.
	PIDsCurrent uint64
	// PIDsMax is pids.max; 0 means no limit.
	PIDsMax uint64
	// Unavailable lists the files that could not be read and why.
	Unavailable []Unavailable
}

// PSI is the pressure stall information of one resource.
type PSI struct {
	// Resource is "cpu", "memory" or "io".
	Resource string
	// Some is the "some" line; Full the "full" line, nil when absent.
	Some, Full *PSILine
}

// PSILine is one line of a PSI file.
type PSILine struct {
	// Avg10, Avg60 and Avg300 are percentages.
	Avg10, Avg60, Avg300 float64
	// TotalUsec is the total stall time in microseconds.
	TotalUsec uint64
}

// ParseCgroupV2Path finds the cgroup v2 entry ("0::/path") of the contents of
// /proc/PID/cgroup. ok is false when the process has none (cgroup v1 only).
func ParseCgroupV2Path(data string) (p string, ok bool) {
	for _, line := range strings.Split(data, "\n") {
		if rest, found := strings.CutPrefix(line, "0::"); found {
			return rest, true
		}
	}
	return "", false
}

// ParseKeyValues parses "key value" lines of unsigned counters, such as
// memory.events and cpu.stat.
func ParseKeyValues(data string) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := scanLines(strings.NewReader(data), func(line string) error {
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil
		}
		if len(f) != 2 {
			return fmt.Errorf("line %q: want \"key value\"", line)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("line %q: %w", line, err)
		}
		out[f[0]] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ParseUintOrMax parses a single-value file such as memory.max or pids.max;
// "max" is 0, meaning no limit.
func ParseUintOrMax(data string) (uint64, error) {
	s := strings.TrimSpace(data)
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q: %w", s, err)
	}
	return v, nil
}

// ParseCPUMax parses cpu.max, "$QUOTA $PERIOD" with QUOTA possibly "max",
// into cores; 0 means no limit.
func ParseCPUMax(data string) (float64, error) {
	f := strings.Fields(data)
	if len(f) != 2 {
		return 0, fmt.Errorf("cpu.max %q: want \"quota period\"", strings.TrimSpace(data))
	}
	period, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || period == 0 {
		return 0, fmt.Errorf("cpu.max %q: bad period", strings.TrimSpace(data))
	}
	if f[0] == "max" {
		return 0, nil
	}
	quota, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cpu.max %q: bad quota", strings.TrimSpace(data))
	}
	return float64(quota) / float64(period), nil
}

// ParsePSI parses a PSI file:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func ParsePSI(resource, data string) (PSI, error) {
	out := PSI{Resource: resource}
	err := scanLines(strings.NewReader(data), func(line string) error {
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil
		}
		l, err := parsePSILine(f[1:])
		if err != nil {
			return fmt.Errorf("%s pressure %q: %w", resource, line, err)
		}
		switch f[0] {
		case "some":
			out.Some = &l
		case "full":
			out.Full = &l
		default:
			return fmt.Errorf("%s pressure %q: want some or full", resource, line)
		}
		return nil
	})
	if err != nil {
		return PSI{}, err
	}
	if out.Some == nil {
		return PSI{}, fmt.Errorf("%s pressure: no some line", resource)
	}
	return out, nil
}

// parsePSILine parses "avg10=.. avg60=.. avg300=.. total=..".
func parsePSILine(fields []string) (PSILine, error) {
	var l PSILine
	seen := 0
	for _, kv := range fields {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return l, fmt.Errorf("%q: want key=value", kv)
		}
		var err error
		switch k {
		case "avg10":
			l.Avg10, err = parsePercent(v)
		case "avg60":
			l.Avg60, err = parsePercent(v)
		case "avg300":
			l.Avg300, err = parsePercent(v)
		case "total":
			l.TotalUsec, err = strconv.ParseUint(v, 10, 64)
		default:
			continue // a future key
		}
		if err != nil {
			return l, fmt.Errorf("%s: %w", k, err)
		}
		seen++
	}
	if seen != 4 {
		return l, fmt.Errorf("want avg10, avg60, avg300 and total")
	}
	return l, nil
}

// parsePercent parses a finite percentage in [0, 100].
func parsePercent(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(f) || f < 0 || f > 100 {
		return 0, fmt.Errorf("%q out of range", v)
	}
	return f, nil
}

// v2Root is the cgroup v2 mount to read. On a hybrid host (v1 controllers
// under /sys/fs/cgroup, v2 at /sys/fs/cgroup/unified) it is the unified one.
func (p FS) v2Root() string {
	if exists(filepath.Join(p.cgroupRoot, "cgroup.controllers")) {
		return p.cgroupRoot
	}
	if unified := filepath.Join(p.cgroupRoot, "unified"); exists(filepath.Join(unified, "cgroup.controllers")) {
		return unified
	}
	return p.cgroupRoot
}

// exists reports whether name can be stat'ed.
func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// CgroupPath reads the cgroup v2 path of pid from /proc/PID/cgroup.
func (p FS) CgroupPath(pid int) (string, error) {
	data, err := readSmall(p.pidPath(pid, "cgroup"))
	if err != nil {
		return "", fmt.Errorf("pid %d: %w", pid, err)
	}
	cg, ok := ParseCgroupV2Path(string(data))
	if !ok {
		return "", fmt.Errorf("pid %d: %w", pid, ErrNoCgroupV2)
	}
	return cg, nil
}

// ErrNoCgroupV2 says a process has no cgroup v2 membership.
var ErrNoCgroupV2 = errors.New("no cgroup v2 entry (0::) in /proc/PID/cgroup: the node runs cgroup v1 only; triage reads cgroup v2")

// Cgroup reads the cgroup v2 files of pid's cgroup. It fails only when the
// cgroup itself cannot be found; missing files are listed in Unavailable.
func (p FS) Cgroup(pid int) (Cgroup, error) {
	cgPath, err := p.CgroupPath(pid)
	if err != nil {
		return Cgroup{}, err
	}
	root := p.v2Root()
	// Clean under "/" so that a path such as "/../.." (a process outside the
	// reader's cgroup namespace) cannot leave the root.
	dir := filepath.Join(root, filepath.FromSlash(path.Clean("/"+cgPath)))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return Cgroup{}, fmt.Errorf("pid %d: cgroup %s is not under %s: mount the cgroup v2 filesystem there from the pod's own cgroup namespace, or pass the right cgroup root", pid, cgPath, root)
	}
	c := Cgroup{Path: cgPath, Dir: dir}
	r := cgroupReader{c: &c, dir: dir}
	r.read("memory.current", func(s string) (err error) { c.MemoryCurrent, err = ParseUintOrMax(s); return })
	r.read("memory.max", func(s string) (err error) { c.MemoryMax, err = ParseUintOrMax(s); return })
	r.read("memory.peak", func(s string) (err error) { c.MemoryPeak, err = ParseUintOrMax(s); return })
	r.read("memory.events", func(s string) (err error) { c.MemoryEvents, err = ParseKeyValues(s); return })
	r.read("cpu.max", func(s string) (err error) {
		c.CPUQuotaCores, err = ParseCPUMax(s)
		if err == nil {
			c.CPUMax = strings.TrimSpace(s)
		}
		return
	})
	r.read("cpu.stat", func(s string) (err error) { c.CPUStat, err = ParseKeyValues(s); return })
	for _, res := range []string{"cpu", "memory", "io"} {
		r.read(res+".pressure", func(s string) error {
			psi, err := ParsePSI(res, s)
			if err == nil {
				c.Pressure = append(c.Pressure, psi)
			}
			return err
		})
	}
	r.read("pids.current", func(s string) (err error) { c.PIDsCurrent, err = ParseUintOrMax(s); return })
	r.read("pids.max", func(s string) (err error) { c.PIDsMax, err = ParseUintOrMax(s); return })
	return c, nil
}

// cgroupReader reads the files of one cgroup directory, recording failures.
type cgroupReader struct {
	c   *Cgroup
	dir string
}

// read reads file and passes its contents to parse; a failure becomes an
// Unavailable entry named "cgroup.<file>".
func (r cgroupReader) read(file string, parse func(string) error) {
	field := "cgroup." + file
	data, err := readSmall(filepath.Join(r.dir, file))
	if err != nil {
		r.c.Unavailable = append(r.c.Unavailable, Unavailable{Field: field, Reason: cgroupFileReason(file, r.dir, err)})
		return
	}
	if err := parse(string(data)); err != nil {
		r.c.Unavailable = append(r.c.Unavailable, Unavailable{Field: field, Reason: fmt.Sprintf("cannot parse %s: %v", filepath.Join(r.dir, file), err)})
	}
}

// cgroupFileReason explains why a cgroup file could not be read.
func cgroupFileReason(file, dir string, err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		controller, _, _ := strings.Cut(file, ".")
		if strings.HasSuffix(file, ".pressure") {
			return fmt.Sprintf("%s is not in %s: the kernel has no PSI (boot with psi=1)", file, dir)
		}
		if file == "memory.peak" {
			return fmt.Sprintf("%s is not in %s: the memory controller is not enabled for this cgroup, it is the root cgroup, or the kernel predates memory.peak (Linux 5.19)", file, dir)
		}
		return fmt.Sprintf("%s is not in %s: the %s controller is not enabled for this cgroup, or it is the root cgroup, which has no limits", file, dir, controller)
	}
	return reason(err)
}
