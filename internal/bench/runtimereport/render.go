package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/triage-sh/triage/internal/bench"
)

// Goals from issue 3's "Done when".
const (
	goalProfileVsGoroutineProfile = 2.0 // grouped view: time and pause within 2x of runtime.GoroutineProfile
	goalTextVsDebug2              = 1.0 // wait states: no slower than WriteTo(w, 2)
	goalIdleRSS                   = 1 << 20
)

// goalWallLoss is the agent's allowed throughput loss by goroutine count.
var goalWallLoss = map[int]float64{10_000: 0.05, 100_000: 0.10}

// render formats the result as markdown.
func render(p params, r result, start time.Time, skip func(string) bool) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("Runtime diagnostics, measured with `make bench` (`go run ./internal/bench/runtimereport %s`) on %s UTC: %s. The section took %s.\n\n",
		strings.Join(os.Args[1:], " "), start.Format("2006-01-02 15:04"), machine(), r.took.Round(time.Second))
	if !skip("dump") {
		renderDump(w, p, r.dump)
	}
	if !skip("wall") {
		renderWall(w, p, r.wall)
	}
	if !skip("idle") {
		renderIdle(w, p, r.idle)
	}
	return b.String()
}

func renderDump(w func(string, ...any), p params, d dumpResult) {
	w("**Goroutine dump of %s goroutines** (`internal/bench/goroutineapp`: a quarter each in a channel receive, `sync.Mutex.Lock`, `time.Sleep` and `select`, at stack depths 5 to 20). ", bench.Thousands(d.n))
	w("The triage rows are the whole `triage goroutines -o json` command, agent → `triage-sidecar --dev --agent-socket` → CLI with grouping, timed from outside; the anchors run inside the same target in the same run. ")
	w("Times, pauses and the ratios are medians of %d rounds (the worst round's pause in parentheses when it differs); the sleeper gap is the worst round. ", p.rounds)
	w("*Stop-the-world* is read from the target's `runtime/metrics` `/sched/pauses/total/other:seconds` histogram: the largest pause, as the upper bound of its bucket (buckets are up to 25%% wide), and, when the world stopped more than once, how many times and for how long in all (upper bounds added, worst round). Pauses of microseconds are mostly the time to stop the threads that are running, so they vary with what else the target is doing (the agent's gRPC stream, here). ")
	w("*Sleeper gap* is a proxy: the largest gap seen by a goroutine of the target sleeping 1 ms in a loop (stop-the-world plus scheduling delay on this %d-CPU machine, where the sidecar and CLI run too).\n\n", runtime.NumCPU())
	w("| | time | bytes | goroutines | stop-the-world | sleeper gap (proxy) | vs anchor | goal |\n")
	w("|---|---:|---:|---:|---:|---:|---|---|\n")
	stw := func(r dumpRow) int64 { return r.worst(func(x dumpRun) int64 { return x.STWMaxNs }) }
	stwTotal := func(r dumpRow) int64 { return r.worst(func(x dumpRun) int64 { return x.STWTotalNs }) }
	gap := func(r dumpRow) int64 { return r.worst(func(x dumpRun) int64 { return x.GapMaxNs }) }
	stwMed := func(r dumpRow) int64 { return r.median(func(x dumpRun) int64 { return x.STWMaxNs }) }
	pause := func(r dumpRow) string {
		if stw(r) == 0 {
			return "none"
		}
		s := "≤ " + dur(stwMed(r))
		if stw(r) != stwMed(r) {
			s += " (worst ≤ " + dur(stw(r)) + ")"
		}
		if c := r.last().STWCount; c > 1 {
			s += fmt.Sprintf("; %d stops, ≤ %s in all", c, dur(stwTotal(r)))
		}
		return s
	}
	ratio := func(a, b int64) float64 { return float64(a) / float64(b) }

	pt, pp := ratio(d.profile.medianNs(), d.gprof.medianNs()), ratio(stwMed(d.profile), stwMed(d.gprof))
	tt, tp, ttot := ratio(d.text.medianNs(), d.debug2.medianNs()), ratio(stwMed(d.text), stwMed(d.debug2)), ratio(stwTotal(d.text), stwTotal(d.debug2))
	prof, text := d.profile.last(), d.text.last()
	collected := func(r dumpRow) int64 { return r.median(func(x dumpRun) int64 { return x.collectNs }) }
	w("| `triage goroutines -o json` (path: %s, the default), end to end | %s (the sidecar collected in %s) | %s JSON | %s in %d groups | %s | %s | time %.2fx, pause %.2fx `GoroutineProfile` | both ≤ %.0fx: %s |\n",
		prof.path, dur(d.profile.medianNs()), dur(collected(d.profile)), kib(prof.bytes), bench.Thousands(prof.goroutines), prof.groups, pause(d.profile), dur(gap(d.profile)),
		pt, pp, goalProfileVsGoroutineProfile, bench.Met(pt <= goalProfileVsGoroutineProfile && pp <= goalProfileVsGoroutineProfile))
	agentSTW := d.text.worst(func(x dumpRun) int64 { return x.agentSTWNs })
	w("| `triage goroutines -o json --path %s` (wait reasons and times), end to end | %s (the sidecar collected in %s) | %s JSON | %s in %d groups | %s; the agent's trailer: %s | %s | time %.2fx, largest pause %.2fx, time stopped %.2fx debug=2 | time ≤ %.0fx: %s |\n",
		text.path, dur(d.text.medianNs()), dur(collected(d.text)), kib(text.bytes), bench.Thousands(text.goroutines), text.groups, pause(d.text), dur(agentSTW), dur(gap(d.text)),
		tt, tp, ttot, goalTextVsDebug2, bench.Met(tt <= goalTextVsDebug2))
	w("| anchor: `runtime.GoroutineProfile` in the target | %s | (%s stack records) | %s | %s | %s | | |\n",
		dur(d.gprof.medianNs()), bench.Thousands(d.gprof.last().goroutines), bench.Thousands(d.gprof.last().goroutines), pause(d.gprof), dur(gap(d.gprof)))
	dbg := d.debug2.last()
	cut := ""
	if dbg.goroutines < d.n {
		cut = fmt.Sprintf(" of %s: pprof cuts the text at 64 MiB", bench.Thousands(d.n))
	}
	w("| anchor: `pprof.Lookup(\"goroutine\").WriteTo(w, 2)` in the target (what gops `stack` does) | %s | %s text | %s%s | %s | %s | | |\n",
		dur(d.debug2.medianNs()), mib(dbg.bytes), bench.Thousands(dbg.goroutines), cut, pause(d.debug2), dur(gap(d.debug2)))
	w("| reference: `WriteTo(w, 0)` in the target (pprof's goroutine profile; the agent groups runtime.GoroutineProfile itself instead) | %s | %s pprof | %s | %s | %s | | |\n\n",
		dur(d.dbg0.medianNs()), kib(d.dbg0.last().bytes), bench.Thousands(d.dbg0.last().goroutines), pause(d.dbg0), dur(gap(d.dbg0)))
	w("What the CLI said (`notes`): profile path: %s; text path: %s.\n\n", quoteAll(prof.notes), quoteAll(text.notes))
}

func renderWall(w func(string, ...any), p params, rows []wallRow) {
	if len(rows) == 0 {
		return
	}
	w("**Wall-clock profiling overhead**: throughput of %d CPU-bound workers (GOMAXPROCS) in the report's process beside idle goroutines (depths 5 to 20), ", rows[0].workers)
	w("with no profiler, plain fgprof at its default 99 Hz, and the agent's wall profile asked for over its socket as the sidecar does; ")
	w("median of %d interleaved %s windows per cell, each after %s of profiling. Loss is against no profiler. ", p.wallRounds, p.wallD, warm)
	w("The workers' wall time is what the agent's last profile (%s long) attributes to them, against what they ran; at a low adapted rate a window holds few looks, so it is coarse.\n\n", warm+p.wallD)
	w("| idle goroutines | no profiler | plain fgprof | agent | goal (agent) | workers' wall time in the agent's profile | what the agent did (path; trailer notes) |\n")
	w("|---:|---:|---:|---:|---|---|---|\n")
	for _, r := range rows {
		goal := "none set"
		if g, ok := goalWallLoss[r.n]; ok {
			goal = fmt.Sprintf("≤ %.0f%%: %s", g*100, bench.Met(r.loss(r.agt) <= g))
		}
		want := int64(r.workers) * int64(p.wallD)
		share := ""
		if r.totalNs > 0 {
			share = fmt.Sprintf(" (%.3f%% of the %s goroutine-seconds profiled)", 100*float64(r.workerNs)/float64(r.totalNs), bench.Thousands(int(time.Duration(r.totalNs).Seconds())))
		}
		w("| %s | %.0f units/s | %.1f%% loss | %.1f%% loss | %s | %.2f s of %.2f s run%s | %s; %s |\n",
			bench.Thousands(r.n), r.none, 100*r.loss(r.fgprof), 100*r.loss(r.agt), goal,
			time.Duration(r.workerNs).Seconds(), time.Duration(want).Seconds(), share, r.path, strings.Join(r.notes, "; "))
	}
	w("\n")
}

func renderIdle(w func(string, ...any), p params, rows []idleRow) {
	if len(rows) == 0 {
		return
	}
	w("**The agent's idle cost in an app**: `sidecar/agent/internal/testapp` with no goroutines of its own, %d copies of each kind run at once and left idle; ", p.copies)
	w("RSS (VmRSS) %s after ready, CPU (utime + stime from /proc/PID/stat, 10 ms ticks) over the %s before that; medians, and the busiest copy.\n\n", p.settle+p.idleFor, p.idleFor)
	w("| | RSS | Δ RSS vs anchor (anonymous / file) | CPU over %s (busiest copy) | goal |\n|---|---:|---:|---:|---|\n", p.idleFor)
	base := rows[0]
	for i, r := range rows {
		delta, goal := "", ""
		if i > 0 {
			delta = fmt.Sprintf("%+.2f MiB (%+.2f / %+.2f)", mibf(r.rss-base.rss), mibf(r.anon-base.anon), mibf(r.file-base.file))
		}
		switch i {
		case 1:
			goal = fmt.Sprintf("Δ RSS < 1 MiB: %s; CPU none measurable (within a tick of the anchor): %s",
				bench.Met(r.rss-base.rss < goalIdleRSS), bench.Met(r.ticks <= base.ticks+1))
		case 2:
			goal = "none set: the flight recorder's steady cost"
		}
		w("| %s | %s | %s | %d ms (%d ms) | %s |\n", r.name, bench.MiB(r.rss), delta, r.ticks*bench.ClockTick/1e6, r.maxTicks*bench.ClockTick/1e6, goal)
	}
	w("\n")
}

func quoteAll(notes []string) string {
	if len(notes) == 0 {
		return "none"
	}
	q := make([]string, len(notes))
	for i, n := range notes {
		q[i] = "\"" + n + "\""
	}
	return strings.Join(q, ", ")
}

func kib(b int64) string { return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10)) }
func mib(b int64) string { return bench.MiB(b) }

func mibf(b int64) float64 { return float64(b) / (1 << 20) }
