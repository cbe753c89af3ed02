package main

import (
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/triage-sh/triage/internal/bench"
)

// idleRow is one kind of idle testapp: medians over its copies.
type idleRow struct {
	name     string
	rss      int64 // VmRSS at the end of the idle window
	anon     int64 // of which RssAnon (heap, stacks)
	file     int64 // and RssFile (the binary's pages)
	ticks    int64 // CPU ticks (utime+stime) over the idle window
	maxTicks int64 // the busiest copy's
}

var idleKinds = []struct {
	name string
	args []string
}{
	{"testapp -no-agent (anchor)", []string{"-no-agent"}},
	{"testapp with the agent", nil},
	{"testapp with the agent and -flight (flight recorder on)", []string{"-flight"}},
}

// measureIdle runs p.copies of each kind at once, all idle: readings taken
// p.settle after they are ready, CPU over the next p.idleFor.
func measureIdle(p params, tmp string) ([]idleRow, error) {
	type one struct {
		kind   int
		mem    bench.Memory
		t0, t1 int64
		err    error
		child  *child
	}
	var all []*one
	defer func() {
		for _, o := range all {
			if o.child != nil {
				o.child.stop()
			}
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for k, kind := range idleKinds {
		for c := range p.copies {
			o := &one{kind: k}
			mu.Lock()
			all = append(all, o)
			mu.Unlock()
			wg.Go(func() {
				sock := filepath.Join(tmp, fmt.Sprintf("idle-%d-%d.sock", k, c))
				o.child, o.err = startChild(fmt.Sprintf("testapp-%d-%d", k, c), tmp, []string{"TRIAGE_AGENT_SOCKET=" + sock}, 30*time.Second, p.idle, kind.args...)
			})
		}
	}
	wg.Wait()
	for _, o := range all {
		if o.err != nil {
			return nil, o.err
		}
	}
	time.Sleep(p.settle)
	for _, o := range all {
		if o.t0, o.err = bench.CPUTicks(o.child.pid()); o.err != nil {
			return nil, o.err
		}
	}
	time.Sleep(p.idleFor)
	for _, o := range all {
		if o.t1, o.err = bench.CPUTicks(o.child.pid()); o.err != nil {
			return nil, o.err
		}
		if o.mem, o.err = bench.ReadMemory(o.child.pid()); o.err != nil {
			return nil, o.err
		}
	}
	rows := make([]idleRow, len(idleKinds))
	for k := range idleKinds {
		var rss, anon, file, ticks []int64
		for _, o := range all {
			if o.kind == k {
				rss = append(rss, o.mem.RSS)
				anon = append(anon, o.mem.Anon)
				file = append(file, o.mem.File)
				ticks = append(ticks, o.t1-o.t0)
			}
		}
		rows[k] = idleRow{name: idleKinds[k].name, rss: bench.Median(rss), anon: bench.Median(anon), file: bench.Median(file),
			ticks: bench.Median(ticks), maxTicks: maxOf(ticks)}
	}
	return rows, nil
}

func maxOf(xs []int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
