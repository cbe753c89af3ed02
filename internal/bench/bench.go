// Package bench holds the pieces of triage's benchmark harness (`make bench`)
// that are worth testing on their own: percentiles, /proc/PID/status memory
// figures and the README marker replacement. The harnesses are ./report
// (RSS and latency of triage-sidecar against a bare grpc-go server, ./floor)
// and ./runtimereport (goroutine dumps of ./goroutineapp, wall-profiling
// overhead and the agent's idle cost, in their own README section); the
// in-process Go benchmarks are in bench_test.go.
package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// README markers: the report replaces what lies between them.
const (
	MarkerStart = "<!-- bench:start -->"
	MarkerEnd   = "<!-- bench:end -->"
)

// ErrNoMarkers is returned by ReplaceBetweenMarkers when doc lacks a marker.
var ErrNoMarkers = errors.New("markers " + MarkerStart + " and " + MarkerEnd + " not found")

// ReplaceBetweenMarkers returns doc with the text between MarkerStart and
// MarkerEnd replaced by body (framed by newlines); the markers stay. It
// returns ErrNoMarkers if either is missing, and an error if they are out of
// order or repeated, so a hand-edited README is never mangled.
func ReplaceBetweenMarkers(doc, body string) (string, error) {
	return replaceSection(doc, MarkerStart, MarkerEnd, body, ErrNoMarkers)
}

// replaceSection is ReplaceBetweenMarkers for any marker pair; it returns
// errMissing when either marker is absent.
// UpsertSection puts body between the markers start and end in doc. When
// neither marker is there it adds the pair, with body, on the line after the
// first of after that doc holds exactly once (the section it should follow),
// or at the end of doc. Markers out of order, repeated, or only one of the
// pair are an error, so a hand-edited README is never mangled.
func UpsertSection(doc, start, end, body string, after ...string) (string, error) {
	errMissing := errors.New("markers " + start + " and " + end + " not found")
	if strings.Contains(doc, start) || strings.Contains(doc, end) {
		return replaceSection(doc, start, end, body, errMissing)
	}
	section := start + "\n" + end + "\n"
	at := len(doc)
	for _, a := range after {
		i := strings.Index(doc, a)
		if i < 0 || strings.Count(doc, a) != 1 {
			continue
		}
		at = i + len(a)
		if nl := strings.IndexByte(doc[at:], '\n'); nl >= 0 {
			at += nl + 1
		} else {
			at = len(doc)
		}
		section = "\n" + section
		break
	}
	if at == len(doc) && doc != "" && !strings.HasSuffix(doc, "\n") {
		section = "\n" + section
	}
	return replaceSection(doc[:at]+section+doc[at:], start, end, body, errMissing)
}

func replaceSection(doc, start, end, body string, errMissing error) (string, error) {
	i := strings.Index(doc, start)
	j := strings.Index(doc, end)
	switch {
	case i < 0 || j < 0:
		return "", errMissing
	case j < i:
		return "", fmt.Errorf("%s comes before %s", end, start)
	case strings.Count(doc, start) > 1 || strings.Count(doc, end) > 1:
		return "", fmt.Errorf("%s or %s appears more than once", start, end)
	}
	body = strings.Trim(body, "\n")
	var b strings.Builder
	b.WriteString(doc[:i+len(start)])
	b.WriteString("\n")
	if body != "" {
		b.WriteString(body)
		b.WriteString("\n")
	}
	b.WriteString(doc[j:])
	return b.String(), nil
}

// Percentile returns the q-quantile (0 < q <= 1) of sorted by the
// nearest-rank method: the smallest value with at least q of the values at
// or below it. It returns 0 for an empty slice.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Summary is the latency distribution of one run.
type Summary struct {
	Calls    int
	P50, P99 time.Duration
	Max      time.Duration
	Wall     time.Duration
}

// Throughput is calls per second of wall time.
func (s Summary) Throughput() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return float64(s.Calls) / s.Wall.Seconds()
}

// Summarize sorts lat in place and summarizes it.
func Summarize(lat []time.Duration, wall time.Duration) Summary {
	slices.Sort(lat)
	s := Summary{Calls: len(lat), Wall: wall, P50: Percentile(lat, 0.50), P99: Percentile(lat, 0.99)}
	if len(lat) > 0 {
		s.Max = lat[len(lat)-1]
	}
	return s
}

// Memory is a process's resident memory, from /proc/PID/status.
type Memory struct {
	RSS int64 // VmRSS, bytes
	HWM int64 // VmHWM (peak RSS), bytes
	// Anon and File split RSS (RssAnon, RssFile): heap, stacks and runtime
	// against the mapped binary's pages. Zero when the kernel lacks them.
	Anon, File int64
}

// ReadMemory reads the resident memory of pid.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	return ParseStatus(b)
}

// ParseStatus reads VmRSS, VmHWM, RssAnon and RssFile out of a
// /proc/PID/status file; VmRSS and VmHWM must be there.
func ParseStatus(status []byte) (Memory, error) {
	var m Memory
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		}
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("%s: unexpected value %q", key, val)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("%s: %w", key, err)
		}
		*dst = kb << 10
		if key == "VmRSS" || key == "VmHWM" {
			seen++
		}
	}
	if seen != 2 {
		return Memory{}, errors.New("VmRSS or VmHWM missing (is this a kernel thread or a zombie?)")
	}
	return m, nil
}

// MiB formats bytes as mebibytes with one decimal.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Thousands formats n with comma separators: 10,000.
func Thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// RewriteFile applies edit to the file at path, keeping its mode: the
// reports use it to put their tables into the README.
func RewriteFile(path string, edit func(string) (string, error)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := edit(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(out), fi.Mode().Perm())
}
