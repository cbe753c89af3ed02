package procfs

import (
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seed adds the fixture files matching glob to f's corpus.
func seed(f *testing.F, glob string) {
	f.Helper()
	names, err := filepath.Glob(glob)
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
}

func FuzzParseStat(f *testing.F) {
	seed(f, "testdata/proc/*/stat")
	f.Add("1 (a)) b) R 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseStat(in)
		if err != nil {
			return
		}
		line := firstLine(in)
		if !strings.Contains(line, "("+s.Comm+")") {
			t.Errorf("comm %q is not delimited by parentheses in %q", s.Comm, line)
		}
		if strings.Contains(line[strings.LastIndexByte(line, ')')+1:], ")") {
			t.Errorf("text after the comm still has ')': %q", line)
		}
		if s.PID < 0 || s.PPID < 0 || s.NumThreads < 0 {
			t.Errorf("negative field in %+v", s)
		}
		if s.CPUUser() < 0 || s.CPUSystem() < 0 {
			t.Errorf("negative CPU time in %+v", s)
		}
		if StateString(s.State) == "" {
			t.Errorf("state %q has no string", s.State)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	seed(f, "testdata/proc/*/status")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseStatus(in)
		if err != nil {
			return
		}
		if s.RSSBytes%1024 != 0 || s.PeakRSSBytes%1024 != 0 {
			t.Errorf("RSS not a whole number of kB: %+v", s)
		}
		if s.Threads < 0 {
			t.Errorf("negative threads: %+v", s)
		}
	})
}

func FuzzParseLimits(f *testing.F) {
	seed(f, "testdata/proc/*/limits")
	f.Fuzz(func(t *testing.T, in string) {
		l, err := ParseLimits(in)
		if err != nil {
			return
		}
		for name := range l {
			if name == "" || strings.TrimSpace(name) != name {
				t.Errorf("limit name %q", name)
			}
			for _, w := range strings.Fields(name) {
				if !strings.Contains(in, w) {
					t.Errorf("limit name word %q not in input", w)
				}
			}
		}
	})
}

func FuzzParseNetTable(f *testing.F) {
	seed(f, "testdata/proc/*/net/tcp*")
	seed(f, "testdata/proc/*/net/udp*")
	f.Fuzz(func(t *testing.T, in string) {
		for _, proto := range []string{"tcp", "udp6"} {
			socks, err := ParseNetTable(strings.NewReader(in), proto, nil)
			if err != nil {
				continue
			}
			if len(socks) > strings.Count(in, "\n")+1 {
				t.Errorf("%d sockets from %d lines", len(socks), strings.Count(in, "\n")+1)
			}
			for _, s := range socks {
				for _, a := range []string{s.LocalAddress, s.RemoteAddress} {
					if _, err := netip.ParseAddrPort(a); err != nil {
						t.Errorf("address %q does not parse back: %v", a, err)
					}
				}
				if s.State == "" || s.Protocol != proto {
					t.Errorf("socket %+v", s)
				}
			}
		}
		if inodes, err := ParseUnixInodes(strings.NewReader(in), nil); err == nil && len(inodes) > strings.Count(in, "\n")+1 {
			t.Errorf("%d unix inodes from %d lines", len(inodes), strings.Count(in, "\n")+1)
		}
	})
}

func FuzzParseCgroupKeyValues(f *testing.F) {
	seed(f, "testdata/cgroup/*/*/*/*")
	f.Add("max 100000")
	f.Fuzz(func(t *testing.T, in string) {
		if kv, err := ParseKeyValues(in); err == nil {
			for k := range kv {
				if k == "" || strings.ContainsAny(k, " \t\n") || !strings.Contains(in, k) {
					t.Errorf("key %q", k)
				}
			}
		}
		if v, err := ParseUintOrMax(in); err == nil && v == 0 && strings.TrimSpace(in) != "max" && strings.Trim(strings.TrimSpace(in), "0+") != "" {
			t.Errorf("ParseUintOrMax(%q) = 0", in)
		}
		if cores, err := ParseCPUMax(in); err == nil && (cores < 0 || math.IsInf(cores, 0) || math.IsNaN(cores)) {
			t.Errorf("ParseCPUMax(%q) = %v", in, cores)
		}
		if p, ok := ParseCgroupV2Path(in); ok && !strings.Contains(in, "0::"+p) {
			t.Errorf("ParseCgroupV2Path(%q) = %q", in, p)
		}
	})
}

func FuzzParsePSI(f *testing.F) {
	seed(f, "testdata/cgroup/*.pressure")
	seed(f, "testdata/cgroup/*/*/*/*.pressure")
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ParsePSI("io", in)
		if err != nil {
			return
		}
		if p.Some == nil || p.Resource != "io" {
			t.Fatalf("ParsePSI() = %+v without a some line", p)
		}
		for _, l := range []*PSILine{p.Some, p.Full} {
			if l == nil {
				continue
			}
			for _, v := range []float64{l.Avg10, l.Avg60, l.Avg300} {
				if math.IsNaN(v) || v < 0 || v > 100 {
					t.Errorf("average %v out of [0, 100]", v)
				}
			}
		}
	})
}
