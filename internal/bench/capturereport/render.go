package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/triage-sh/triage/internal/bench"
)

// Goals from issue 4's "Done when".
const (
	goalPeakRSS = 64 << 20
	goalCancel  = 100 * time.Millisecond
)

// render formats the result as markdown.
func render(p params, r result, start time.Time, mach string, skip func(string) bool) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("Packet capture, measured with `make bench` (`go run ./internal/bench/capturereport %s`) on %s UTC: %s",
		strings.Join(os.Args[1:], " "), start.Format("2006-01-02 15:04"), mach)
	if r.tcpdumpVersion != "" {
		w("; anchor %s", r.tcpdumpVersion)
	}
	w(". The sidecar runs with `--insecure-local --unix-socket` (its gRPC traffic stays off lo), `--capture-ring-bytes %d`, `--capture-buffer-bytes` at its default. The section took %s.\n\n",
		p.ringBytes, r.took.Round(time.Second))
	if !skip("udp") {
		renderCompare(w, p, r.udp, true)
	}
	if !skip("tcp") {
		renderCompare(w, p, r.tcp, false)
	}
	if !skip("stream") {
		renderStream(w, r.stream)
	}
	if !skip("cancel") {
		renderCancel(w, p, r.cancel)
	}
	if !skip("compile") {
		renderCompile(w, r.compile)
	}
	if r.cli != nil {
		renderCLI(w, *r.cli)
	}
	return b.String()
}

func renderCLI(w func(string, ...any), c cliResult) {
	desc := func(r cliRun) string {
		if r.exit == 0 && r.outErr == nil {
			return fmt.Sprintf("exit 0, JSON with stop reason `%s`, %d bytes", r.out.StopReason, r.out.Bytes)
		}
		s := fmt.Sprintf("exit %d", r.exit)
		if r.stderr != "" {
			s += ", `" + strings.ReplaceAll(r.stderr, "`", "'") + "`"
		}
		if r.outErr != nil {
			s += ", no JSON on stdout"
		}
		return s
	}
	w("**The CLI** (`triage capture -i lo -f '%s' --duration 1s -o json`, 1 s on an idle filter): with `-w /dev/null`, %s; with `-w FILE` (a regular file), %s.",
		idleFilter, desc(c.devNull), desc(c.file))
	if c.devNull.exit != 0 && c.file.exit == 0 {
		w(" The rows above therefore stream through the Go client (`client.Capture` into a counting discard), the same server path without the CLI's file handling.")
	}
	w("\n\n")
}

func renderCompare(w func(string, ...any), p params, c comparison, udp bool) {
	tr, td := c.runs[toolTriage], c.runs[toolTcpdump]
	if len(tr) == 0 || len(td) == 0 {
		return
	}
	ringKiB := p.ringBytes >> 10
	if udp {
		w("**Small UDP packets on lo, side by side with tcpdump.** A generator in the report's process sends %d-byte datagrams from a connected socket to a sink that reads them (sendmmsg / recvmmsg), paced at %s/s in batches of 32 for %s; ",
			p.udpPayload, bench.Thousands(p.udpRate), c.d)
	} else {
		w("**Bulk TCP on lo, side by side with tcpdump.** A new loopback connection per capture, written in 256 KiB writes as fast as it goes for %s (lo's 64 KiB MTU and TSO: data packets of up to 64 KiB, and the ACKs, both match the filter); ", c.d)
	}
	w("each capturer is started and waited for (its packet socket bound to lo), then the traffic runs, then %s later it is stopped (tcpdump: SIGINT, it prints its statistics; triage: `StopCapture`, the trailer follows). ", p.drain)
	w("triage is the sidecar streaming through the Go client (`client.Capture`) into a counting discard in the report's process, as `triage capture -w /dev/null` would (see the CLI note below). ")
	w("The capturers take turns over %d round(s), the order rotating; medians, every round in parentheses. Filter `%s`, snap length 262144, an %d MiB ring each. ", p.rounds, c.filter, p.ringBytes>>20)
	w("*Received by filter* is the kernel's count of packets the socket's filter accepted, drops included (tcpdump's line of that name, the trailer's `kernel_packets`): both keep one copy of each packet on lo, but libpcap 1.10 discards lo's outgoing copy in user space, so its ring takes both copies and its count is doubled. ")
	w("*CPU* is the capturing process's user + system time (tcpdump; the sidecar, not the client); the kernel's copy into the ring runs in softirq on whichever task is on the CPU, mostly the sender, so neither counts it.\n\n")

	med := func(rs []capRun, f func(capRun) int64) int64 {
		var xs []int64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return bench.Median(xs)
	}
	all := func(rs []capRun, f func(capRun) int64, fmtf func(int64) string) string {
		var s []string
		for _, r := range rs {
			s = append(s, fmtf(f(r)))
		}
		return strings.Join(s, ", ")
	}
	num := func(n int64) string { return bench.Thousands(int(n)) }
	cell := func(rs []capRun, f func(capRun) int64) string {
		return fmt.Sprintf("%s (%s)", num(med(rs, f)), all(rs, f, num))
	}
	captured := func(r capRun) int64 { return r.captured }
	filtered := func(r capRun) int64 { return r.filtered }
	kdrops := func(r capRun) int64 { return r.kdrops }
	sdrops := func(r capRun) int64 { return r.sdrops }
	sent := func(r capRun) int64 { return r.gen.sent }
	cpu := func(r capRun) int64 { return int64(r.cpu) }
	fileB := func(r capRun) int64 { return r.fileBytes }
	rate := func(rs []capRun) float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, r.gen.rate())
		}
		return bench.Median(xs)
	}
	cpuCell := func(rs []capRun) string {
		return fmt.Sprintf("%.2f s (%s)", time.Duration(med(rs, cpu)).Seconds(), all(rs, cpu, func(n int64) string { return fmt.Sprintf("%.2f", time.Duration(n).Seconds()) }))
	}
	name := func(tool string) string {
		switch tool {
		case toolTcpdump:
			return fmt.Sprintf("anchor: `tcpdump -i lo -n -B %d -s 262144 -w /dev/null '%s'`", ringKiB, c.filter)
		case toolTcpdumpPipe:
			return "streaming anchor: the same with `-w -` into a pipe the report reads and discards"
		}
		ring := ""
		if rb := tr[0].ring; rb != "" {
			ring = fmt.Sprintf(" (header: ring_bytes %s)", rb)
		}
		return fmt.Sprintf("triage-sidecar, `Capture` of `%s` on lo%s", c.filter, ring)
	}
	tools := []string{toolTcpdump, toolTcpdumpPipe, toolTriage}
	var reasons []string
	odd := false
	for _, x := range tr {
		reasons = append(reasons, "`"+x.stop+"`")
		odd = odd || x.stop != "client"
	}
	if odd {
		w("Not every triage capture ended by `StopCapture`: stop reasons %s by round.\n\n", strings.Join(reasons, ", "))
	}

	if udp {
		caughtShare := func(rs []capRun) float64 {
			var xs []float64
			for _, r := range rs {
				if r.gen.sent > 0 {
					xs = append(xs, 100*float64(r.captured)/float64(r.gen.sent))
				}
			}
			return bench.Median(xs)
		}
		var drops int64
		for _, r := range tr {
			drops += r.kdrops + r.sdrops
		}
		w("| | generator sent (achieved rate) | packets captured | captured / sent | kernel drops | stream drops | received by filter | CPU | goal |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, tool := range tools {
			rs := c.runs[tool]
			if len(rs) == 0 {
				continue
			}
			goal, sd := "", ""
			if tool == toolTriage {
				trS, tdS := caughtShare(tr), caughtShare(td)
				goal = fmt.Sprintf("at least as many packets as tcpdump (as a share of those sent, since the generator's count varies by run): %s (%.2f%% against %.2f%%); zero drops in every round: %s",
					bench.Met(trS >= tdS), trS, tdS, bench.Met(drops == 0))
				sd = cell(rs, sdrops)
			}
			w("| %s | %s at %s/s (%s) | %s | %.2f%% | %s | %s | %s | %s | %s |\n", name(tool), num(med(rs, sent)), num(int64(rate(rs))), all(rs, sent, num), cell(rs, captured), caughtShare(rs),
				cell(rs, kdrops), sd, cell(rs, filtered), cpuCell(rs), goal)
		}
		if lo := min(rate(tr), rate(td)); lo < 0.9*float64(p.udpRate) {
			w("**The generator fell short of the %s/s asked** (medians: %s/s in the tcpdump runs, %s/s in the triage runs; the machine's other load and the capture itself take the CPU it needs): the drop figures hold for the rate achieved.\n\n",
				bench.Thousands(p.udpRate), num(int64(rate(td))), num(int64(rate(tr))))
		}
		short := func(r capRun) int64 { return r.gen.sent - r.gen.received }
		w("\nThe generator gives up on what falls more than 2 ms behind rather than bursting (datagrams skipped per run: tcpdump %s; triage %s); the sink received all but %s (tcpdump runs) and %s (triage runs) of those sent.\n\n",
			all(td, func(r capRun) int64 { return r.gen.skipped }, num), all(tr, func(r capRun) int64 { return r.gen.skipped }, num),
			all(td, short, num), all(tr, short, num))
		return
	}

	w("| | flow moved (rate) | packets captured | file | kernel drops | stream drops | received by filter | CPU | goal |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, tool := range tools {
		rs := c.runs[tool]
		if len(rs) == 0 {
			continue
		}
		goal, sd, file := "", "", "(`/dev/null`)"
		if f := med(rs, fileB); f >= 0 {
			file = mib(f)
		}
		if tool == toolTriage {
			trC, tdC := med(tr, captured), med(td, captured)
			goal = fmt.Sprintf("at least as many packets as tcpdump: %s (%+.0f%%)", bench.Met(trC >= tdC), pct(trC, tdC))
			if pp := c.runs[toolTcpdumpPipe]; len(pp) > 0 {
				goal += fmt.Sprintf("; against the streaming anchor %+.0f%%", pct(trC, med(pp, captured)))
			}
			sd = cell(rs, sdrops)
		}
		w("| %s | %s at %s/s | %s | %s | %s | %s | %s | %s | %s |\n", name(tool), mib(med(rs, sent)), mib(int64(rate(rs))), cell(rs, captured), file,
			cell(rs, kdrops), sd, cell(rs, filtered), cpuCell(rs), goal)
	}
	w("\nThe flow runs as fast as the %d CPUs allow, so each capturer slows it by what it takes from them; what any capturer keeps is bounded by its cost per byte: `-w /dev/null` touches no packet data after the kernel's copy into the ring, a stream copies every byte on its way out.\n\n", numCPU())
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * (float64(a) - float64(b)) / float64(b)
}

func renderStream(w func(string, ...any), s streamResult) {
	c := s.capture
	w("**Sidecar memory while it streams a %s capture.** The sidecar's first capture (after its idle RSS was read): a bulk TCP flow on lo (as above), filter `tcp port P`, `max_bytes` %d, streamed to the Go client into a counting discard until max bytes ended it (the sidecar runs with `--capture-max-bytes %d`, so that the comparisons above end by `StopCapture`, not by size); its RSS sampled from /proc/PID/status every 20 ms (%d samples), VmHWM read after. The mmap'd ring (8 MiB) counts in RSS as file pages once the kernel has written to it.\n\n",
		mib(s.want), s.want, max(s.want, sidecarMaxBytes), s.samples)
	w("| | value | goal |\n|---|---:|---|\n")
	w("| idle RSS before the capture (anonymous / file) | %s (%s / %s) | |\n", mib(s.idle.RSS), mib(s.idle.Anon), mib(s.idle.File))
	w("| peak RSS (VmHWM) while streaming | %s | < %s: %s |\n", mib(s.hwm), mib(goalPeakRSS), bench.Met(s.hwm > 0 && s.hwm < goalPeakRSS))
	w("| largest sampled VmRSS (anonymous / file) | %s (%s / %s) | |\n", mib(s.peak.RSS), mib(s.peak.Anon), mib(s.peak.File))
	w("| the capture: file, duration, throughput; the sidecar's CPU | %s in %s, %.0f MiB/s; stop reason `%s`; %.2f s CPU (%.0f MiB per CPU-second) | |\n",
		mib(c.Bytes), s.took.Round(time.Millisecond), s.mibps(), c.StopReason, s.cpu.Seconds(), float64(c.Bytes)/(1<<20)/max(s.cpu.Seconds(), 0.01))
	w("| packets; kernel drops; stream drops | %s; %s; %s | none set (the flow outruns any capture: %s moved meanwhile, %s/s) |\n\n",
		bench.Thousands(int(c.Packets)), bench.Thousands(int(c.KernelDrops)), bench.Thousands(int(c.StreamDrops)),
		mib(s.flowBytes), mib(int64(float64(s.flowBytes)/max(s.flowTook.Seconds(), 1e-9))))
}

func renderCancel(w func(string, ...any), p params, c cancelResult) {
	if len(c.stop) == 0 || len(c.readmit) == 0 {
		return
	}
	w("**Cancel-to-stop latency**, %d tries each, a capture on lo with a filter no packet matches (`%s`), cancelled 150 ms after its header (its reader parked in poll), through the Go client (`client.Capture`) on the sidecar's Unix socket. ", p.cancelTries, c.filter)
	w("The next capture is retried at once while the server refuses it (`--capture-max-concurrent 1`, the default), so the second row includes one refused round trip at most.\n\n")
	w("| | median | max | goal |\n|---|---:|---:|---|\n")
	med := func(d []time.Duration) time.Duration { return d[len(d)/2] }
	mx := func(d []time.Duration) time.Duration { return d[len(d)-1] }
	note := ""
	if len(c.stopNotes) > 0 {
		note = fmt.Sprintf(" (stop reasons other than client: %s)", strings.Join(c.stopNotes, ", "))
	}
	w("| `StopCapture` sent → trailer received%s (of which the `StopCapture` call: median %s, max %s) | %s | %s | ≤ %s: %s |\n",
		note, dur(med(c.stopRPC)), dur(mx(c.stopRPC)), dur(med(c.stop)), dur(mx(c.stop)), dur(goalCancel), bench.Met(mx(c.stop) <= goalCancel))
	attempts := 0
	for _, a := range c.attempts {
		attempts = max(attempts, a)
	}
	w("| client context cancelled → next capture admitted (its header received; at most %d refused tries) | %s | %s | ≤ %s: %s |\n\n",
		attempts, dur(med(c.readmit)), dur(mx(c.readmit)), dur(goalCancel), bench.Met(mx(c.readmit) <= goalCancel))
}

func renderCompile(w func(string, ...any), c compileResult) {
	if c.missing != nil {
		w("**Filter compile time**: skipped, the fixtures folder is absent (%v).\n\n", c.missing)
		return
	}
	w("**Filter compile time** (`bpf.Compile`, in this process): every filter of libpcap's test tables in `%s` for EN10MB and LINUX_SLL2, read as `internal/bpf`'s corpus test reads them: ", c.dir)
	w("*accept* holds each alias of the accept tests without Linux extensions, *reject* the filters libpcap must reject, *apply* the filters run over the savefiles of those link types. ")
	w("Each filter's time is its median over %d passes (after a warm-up); rejected filters stop at the error. There is no in-process anchor: `tcpdump -d` on the same filters costs a process start each (milliseconds), which is not the compiler's time.\n\n", c.passes)
	w("| table | link type | filters | compiled | rejected | total | per filter: median | mean | slowest |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range append(c.rows, c.all) {
		name, link := r.table, r.link.String()
		if r.table == "all" {
			name, link = "**all**", "both"
		}
		mean := time.Duration(0)
		if r.filters > 0 {
			mean = r.total / time.Duration(r.filters)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s `%s` |\n", name, link, bench.Thousands(r.filters), bench.Thousands(r.accepted), bench.Thousands(r.rejected),
			dur(r.total), us(r.p50), us(mean), us(r.max), truncate(r.slowest, 60))
	}
	w("\n")
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "`", "'")
	if rs := []rune(s); len(rs) > n {
		return string(rs[:n]) + "…"
	}
	return s
}

func numCPU() int { return runtime.NumCPU() }

func mib(b int64) string { return bench.MiB(b) }

// us formats a duration in microseconds with one decimal.
func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond)) }

// dur formats a duration for a table: µs, ms or s with three figures.
func dur(d time.Duration) string {
	switch {
	case d < 0:
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
