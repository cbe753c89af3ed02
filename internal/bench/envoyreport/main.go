// Command envoyreport is the Envoy half of `make bench` (issue 5's "Done
// when"): decode and explain time and peak memory for the largest config
// dump fixture and for a synthetic Istio-like dump of 5,000 clusters and
// 20,000 endpoints, next to the floor, a plain protojson.Unmarshal of the
// same bytes into envoy.admin.v3.ConfigDump. It runs internal/envoyexplain's
// benchmarks (`go test -bench`, so the dumps are built by the same code the
// tests check) and writes a markdown table to stdout and, with -readme,
// between <!-- bench-envoy:start --> and <!-- bench-envoy:end -->.
//
//	go run ./internal/bench/envoyreport -readme README.md
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/triage-sh/triage/internal/bench"
)

func main() {
	readme := flag.String("readme", "", "README to write the table into (empty: stdout only)")
	benchtime := flag.String("benchtime", "5x", "go test -benchtime")
	flag.Parse()
	if err := run(*readme, *benchtime); err != nil {
		fmt.Fprintln(os.Stderr, "envoyreport:", err)
		os.Exit(1)
	}
}

// result is one benchmark line.
type result struct {
	nsPerOp  float64
	peakMiB  float64
	bytesOp  float64
	mbPerSec float64
}

// parse reads go test -bench output: results by benchmark and input.
func parse(r io.Reader) (map[string]map[string]result, error) {
	lines, err := bench.ParseGoBench(r)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]result{}
	for _, l := range lines {
		if out[l.Name] == nil {
			out[l.Name] = map[string]result{}
		}
		out[l.Name][l.Sub] = result{nsPerOp: l.NsPerOp, peakMiB: l.Metrics["peak-MiB"], bytesOp: l.Metrics["B/op"], mbPerSec: l.Metrics["MB/s"]}
	}
	return out, nil
}

func run(readme, benchtime string) error {
	start := time.Now()
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchtime", benchtime, "-benchmem", "./internal/envoyexplain/")
	var stdout bytes.Buffer
	cmd.Stdout = io.MultiWriter(&stdout, os.Stderr)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test -bench ./internal/envoyexplain/: %w", err)
	}
	res, err := parse(&stdout)
	if err != nil {
		return err
	}
	body, err := render(res, start, time.Since(start), benchtime)
	if err != nil {
		return err
	}
	fmt.Print(body)
	if readme == "" {
		return nil
	}
	return bench.RewriteFile(readme, func(doc string) (string, error) { return bench.UpsertEnvoySection(doc, body) })
}

func ms(ns float64) string { return fmt.Sprintf("%.1f ms", ns/1e6) }

func render(res map[string]map[string]result, start time.Time, took time.Duration, benchtime string) (string, error) {
	floor := res["Floor"]
	if len(floor) == 0 {
		return "", fmt.Errorf("no BenchmarkFloor results: did the fixtures folder or the benchmarks change?")
	}
	var inputs []string
	for in := range floor {
		inputs = append(inputs, in)
	}
	sort.Strings(inputs)
	sort.SliceStable(inputs, func(i, j int) bool { return strings.HasPrefix(inputs[i], "synthetic") })
	var b strings.Builder
	fmt.Fprintf(&b, "Envoy config dumps, measured with `make bench` (`go run ./internal/bench/envoyreport`, which runs `go test -bench . -benchtime %s ./internal/envoyexplain/`) on %s: %s, %d CPUs, %s. The section took %s. "+
		"*Floor* is a plain `protojson.Unmarshal` of the same bytes into `envoy.admin.v3.ConfigDump` with go-control-plane's types; *decode* is triage's (secrets scrubbed in the same pass, unknown types kept as JSON); *explain* is the tree, counts and findings from the decoded dump. *Peak* is the largest Go heap in use sampled during one operation (garbage included).\n\n",
		benchtime, start.UTC().Format("2006-01-02 15:04 UTC"), cpuModel(), runtime.NumCPU(), runtime.Version(), took.Round(time.Second))
	b.WriteString("| input | floor | decode | explain | decode + explain | against the floor | peak heap (floor / decode + explain) | goal |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, in := range inputs {
		f, d, e, de := floor[in], res["Decode"][in], res["Explain"][in], res["DecodeExplain"][in]
		ratio := de.nsPerOp / f.nsPerOp
		goal := ""
		if strings.HasPrefix(in, "synthetic") {
			goal = fmt.Sprintf("≤ 2x the floor and < 1 s: %s", bench.Met(ratio <= 2 && de.nsPerOp < 1e9))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.2fx | %.0f MiB / %.0f MiB | %s |\n", in, ms(f.nsPerOp), ms(d.nsPerOp), ms(e.nsPerOp), ms(de.nsPerOp), ratio, f.peakMiB, de.peakMiB, goal)
	}
	b.WriteString("\nThe synthetic dump is an Istio-like sidecar's: 5,000 EDS clusters with TLS, circuit breakers and outlier detection, 20,000 endpoints, 50 listeners with RDS route configurations of 100 virtual hosts each (29 MB of JSON); the fixture is the largest recorded dump in `../shared/fixtures/envoy`. The work runs in the `triage-envoy` worker process, not in the sidecar.\n")
	return b.String(), nil
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
