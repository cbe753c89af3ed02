package bench

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// GoBench is one result line of `go test -bench`:
// BenchmarkName/Sub-N  iterations  ns/op  [value unit]...
type GoBench struct {
	// Name is the benchmark without "Benchmark"; Sub its sub-benchmark
	// without the -GOMAXPROCS suffix.
	Name, Sub string
	NsPerOp   float64
	// Metrics are the other values by unit: "B/op", "MB/s", b.ReportMetric's.
	Metrics map[string]float64
}

var goBenchLine = regexp.MustCompile(`^Benchmark(\w+)/(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

// ParseGoBench reads the result lines of `go test -bench` output in order,
// skipping everything else (sub-benchmarks only).
func ParseGoBench(r io.Reader) ([]GoBench, error) {
	var out []GoBench
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := goBenchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, err
		}
		b := GoBench{Name: m[1], Sub: m[2], NsPerOp: ns, Metrics: map[string]float64{}}
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				b.Metrics[f[i+1]] = v
			}
		}
		out = append(out, b)
	}
	return out, sc.Err()
}
