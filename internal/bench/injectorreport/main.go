// Command injectorreport is the injector's part of `make bench` (issue 6's
// "Done when"): the webhook's p50/p99 latency for bursts of 50 concurrent
// AdmissionReviews over TLS, for a scale-up (identical pods) and for 50
// distinct pods. It runs internal/injector's BenchmarkReviewConcurrent
// (`go test -bench`, the production handler and TLS server) and writes a
// markdown table to stdout and, with -readme, between
// <!-- bench-injector:start --> and <!-- bench-injector:end -->.
//
//	go run ./internal/bench/injectorreport -readme README.md
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/triage-sh/triage/internal/bench"
)

const (
	markerStart = "<!-- bench-injector:start -->"
	markerEnd   = "<!-- bench-injector:end -->"
)

func main() {
	readme := flag.String("readme", "", "README to write the table into (empty: stdout only)")
	benchtime := flag.String("benchtime", "500x", "go test -benchtime")
	count := flag.Int("count", 3, "go test -count (the median of the runs is reported)")
	flag.Parse()
	if err := run(*readme, *benchtime, *count); err != nil {
		fmt.Fprintln(os.Stderr, "injectorreport:", err)
		os.Exit(1)
	}
}

// sample is one benchmark line's metrics.
type sample struct{ p50, p99, perSec float64 }

// parse returns the samples of each case, in the order they ran.
func parse(r io.Reader) (map[string][]sample, []string, error) {
	lines, err := bench.ParseGoBench(r)
	if err != nil {
		return nil, nil, err
	}
	out := map[string][]sample{}
	var order []string
	for _, l := range lines {
		if l.Name != "ReviewConcurrent" {
			continue
		}
		if _, ok := out[l.Sub]; !ok {
			order = append(order, l.Sub)
		}
		out[l.Sub] = append(out[l.Sub], sample{p50: l.Metrics["p50-ms"], p99: l.Metrics["p99-ms"], perSec: l.Metrics["reviews/s"]})
	}
	return out, order, nil
}

func run(readme, benchtime string, count int) error {
	start := time.Now()
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "BenchmarkReviewConcurrent", "-benchtime", benchtime, "-count", strconv.Itoa(count), "./internal/injector/")
	var stdout bytes.Buffer
	cmd.Stdout = io.MultiWriter(&stdout, os.Stderr)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test -bench ./internal/injector/: %w", err)
	}
	res, order, err := parse(&stdout)
	if err != nil {
		return err
	}
	body, err := render(res, order, start, time.Since(start), benchtime, count)
	if err != nil {
		return err
	}
	fmt.Print(body)
	if readme == "" {
		return nil
	}
	return bench.RewriteFile(readme, func(doc string) (string, error) {
		return bench.UpsertSection(doc, markerStart, markerEnd, body, bench.EnvoyMarkerEnd)
	})
}

func render(res map[string][]sample, order []string, start time.Time, took time.Duration, benchtime string, count int) (string, error) {
	if len(order) == 0 {
		return "", fmt.Errorf("no BenchmarkReviewConcurrent results")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The injector, measured with `make bench` (`go run ./internal/bench/injectorreport`, which runs `go test -bench BenchmarkReviewConcurrent -benchtime %s -count %d ./internal/injector/`) on %s: %d CPUs, %s. The section took %s. "+
		"Each operation is a burst of 50 concurrent AdmissionReviews (v1, a realistic Deployment pod) from one HTTP/2 client to the production handler and TLS server on loopback; p50 and p99 are over every review of the run; medians of %d runs, every run in parentheses. *replicas*: 50 identical pods, as a ReplicaSet scale-up sends them; *distinct*: 50 pods that differ.\n\n",
		benchtime, count, start.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version(), took.Round(time.Second), count)
	b.WriteString("| pods | p50 | p99 | reviews/s | goal |\n|---|---:|---:|---:|---|\n")
	for _, name := range order {
		ss := res[name]
		var p50, p99, ps []float64
		for _, s := range ss {
			p50, p99, ps = append(p50, s.p50), append(p99, s.p99), append(ps, s.perSec)
		}
		m99 := bench.Median(p99)
		fmt.Fprintf(&b, "| %s | %.1f ms (%s) | %.1f ms (%s) | %s | p99 < 10 ms: %s |\n", name, bench.Median(p50), list(p50), m99, list(p99), bench.Thousands(int(bench.Median(ps))), bench.Met(m99 < 10))
	}
	return b.String(), nil
}

func list(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strings.Join(s, ", ")
}
