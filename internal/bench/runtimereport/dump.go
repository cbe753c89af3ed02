package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/triage-sh/triage/internal/bench"
)

// pauses is goroutineapp's reply to "since" (see its doc).
type pauses struct {
	STWMaxNs   int64  `json:"stw_max_ns"`
	STWCount   uint64 `json:"stw_count"`
	STWTotalNs int64  `json:"stw_total_ns"`
	GapMaxNs   int64  `json:"gap_max_ns"`
}

// anchorReply is goroutineapp's reply to an anchor command.
type anchorReply struct {
	What       string `json:"what"`
	Ns         int64  `json:"ns"`
	Bytes      int64  `json:"bytes"`
	Goroutines int    `json:"goroutines"`
	pauses
}

// dumpRun is one measurement: an anchor in the target, or a CLI command.
type dumpRun struct {
	ns, bytes  int64
	goroutines int // goroutines the dump holds
	groups     int
	path       string   // the CLI's "path"
	notes      []string // the CLI's "notes"
	agentSTWNs int64    // from the text path's note, 0 when absent
	collectNs  int64    // the CLI's "collected_seconds": the sidecar's collection
	pauses
}

// dumpRow is the summary of one row's rounds.
type dumpRow struct {
	runs []dumpRun
}

func (r dumpRow) medianNs() int64 { return r.median(func(x dumpRun) int64 { return x.ns }) }

// median returns the median of f over the rounds.
func (r dumpRow) median(f func(dumpRun) int64) int64 {
	var xs []int64
	for _, x := range r.runs {
		xs = append(xs, f(x))
	}
	return bench.Median(xs)
}

// worst returns the largest of f over the rounds.
func (r dumpRow) worst(f func(dumpRun) int64) int64 {
	var m int64
	for _, x := range r.runs {
		m = max(m, f(x))
	}
	return m
}

func (r dumpRow) last() dumpRun { return r.runs[len(r.runs)-1] }

type dumpResult struct {
	n                   int // goroutines in the target (NumGoroutine, from the debug=0 anchor)
	debug2, gprof, dbg0 dumpRow
	profile, text       dumpRow
}

// measureDump starts goroutineapp with p.n goroutines and a sidecar beside
// it, then, p.rounds times: the three in-process anchors, and the CLI on the
// profile and the text path, each between a mark and a since.
func measureDump(p params, tmp string) (dumpResult, error) {
	var res dumpResult
	sock := filepath.Join(tmp, "dump-agent.sock")
	progress("goroutine dump: starting goroutineapp with %s goroutines", bench.Thousands(p.n))
	app, err := startChild("goroutineapp", tmp, nil, 2*time.Minute, p.app, "-n", fmt.Sprint(p.n), "-socket", sock)
	if err != nil {
		return res, err
	}
	defer app.stop()

	addr, err := freePort()
	if err != nil {
		return res, err
	}
	dev := filepath.Join(tmp, "dev")
	sc := exec.Command(p.sidecar, "--dev", dev, "--addr", addr, "--audit-log", filepath.Join(tmp, "audit.log"), "--agent-socket", sock)
	scLog := filepath.Join(tmp, "sidecar.log")
	f, err := os.Create(scLog)
	if err != nil {
		return res, err
	}
	sc.Stderr, sc.Stdout = f, f
	err = sc.Start()
	f.Close()
	if err != nil {
		return res, err
	}
	defer func() { _ = sc.Process.Kill(); _ = sc.Wait() }()
	if err := waitLog(scLog, "msg=serving", 20*time.Second); err != nil {
		return res, err
	}

	cli := func(args ...string) (dumpRun, error) {
		if _, err := app.ask("mark"); err != nil {
			return dumpRun{}, err
		}
		cmd := exec.Command(p.cli, append([]string{"--dev", dev, "--addr", addr, "goroutines", "-o", "json"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		t0 := time.Now()
		err := cmd.Run()
		ns := int64(time.Since(t0))
		if err != nil {
			return dumpRun{}, fmt.Errorf("triage goroutines %s: %w: %s", strings.Join(args, " "), err, errb.String())
		}
		r, err := parseCLI(out.Bytes())
		if err != nil {
			return r, err
		}
		r.ns = ns
		line, err := app.ask("since")
		if err != nil {
			return r, err
		}
		return r, json.Unmarshal([]byte(line), &r.pauses)
	}
	anchor := func(what string) (dumpRun, error) {
		line, err := app.ask(what)
		if err != nil {
			return dumpRun{}, err
		}
		var a anchorReply
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			return dumpRun{}, fmt.Errorf("%s: %q: %w", what, line, err)
		}
		return dumpRun{ns: a.Ns, bytes: a.Bytes, goroutines: a.Goroutines, pauses: a.pauses}, nil
	}

	for i := range p.rounds {
		for _, m := range []struct {
			row  *dumpRow
			name string
			do   func() (dumpRun, error)
		}{
			{&res.gprof, "runtime.GoroutineProfile", func() (dumpRun, error) { return anchor("profile") }},
			{&res.dbg0, "WriteTo(w, 0)", func() (dumpRun, error) { return anchor("debug0") }},
			{&res.profile, "triage goroutines -o json", func() (dumpRun, error) { return cli() }},
			{&res.debug2, "WriteTo(w, 2)", func() (dumpRun, error) { return anchor("debug2") }},
			{&res.text, "triage goroutines -o json --path text", func() (dumpRun, error) { return cli("--path", "text") }},
		} {
			r, err := m.do()
			if err != nil {
				return res, err
			}
			progress("goroutine dump, round %d/%d: %s took %s, max pause %s", i+1, p.rounds, m.name, dur(r.ns), dur(r.STWMaxNs))
			m.row.runs = append(m.row.runs, r)
		}
	}
	res.n = res.dbg0.last().goroutines
	return res, nil
}

// cliOutput is the part of `triage goroutines -o json` the table uses.
type cliOutput struct {
	Total int      `json:"total"`
	Path  string   `json:"path"`
	Notes []string `json:"notes"`
	// Collected is how long the sidecar took to collect the dump.
	Collected float64           `json:"collected_seconds"`
	Groups    []json.RawMessage `json:"groups"`
}

var stwNote = regexp.MustCompile(`stopped the world for about (\S+)`)

// parseCLI reads `triage goroutines -o json`.
func parseCLI(out []byte) (dumpRun, error) {
	var c cliOutput
	if err := json.Unmarshal(out, &c); err != nil {
		return dumpRun{}, fmt.Errorf("triage goroutines -o json: %w", err)
	}
	r := dumpRun{bytes: int64(len(out)), goroutines: c.Total, groups: len(c.Groups), path: c.Path, notes: c.Notes,
		collectNs: int64(c.Collected * 1e9)}
	for _, n := range c.Notes {
		if m := stwNote.FindStringSubmatch(n); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				r.agentSTWNs = int64(d)
			}
		}
	}
	return r, nil
}

// waitLog waits until file holds want.
func waitLog(file, want string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		b, _ := os.ReadFile(file)
		if bytes.Contains(b, []byte(want)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %q within %s:\n%s", filepath.Base(file), want, wait, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback address with a port free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// dur formats nanoseconds for a table: µs, ms or s with three figures.
func dur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case ns < 0:
		return "?"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}
