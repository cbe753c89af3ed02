package goroutines

import (
	"bytes"
	"fmt"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustParse(tb testing.TB, s string) *Dump {
	tb.Helper()
	d, err := Parse(strings.NewReader(s))
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return d
}

// TestGroupSynthetic groups a generated debug=2 dump whose per-stack
// counts, waits and first IDs are known.
func TestGroupSynthetic(t *testing.T) {
	ts := synthTemplates(40)
	var buf bytes.Buffer
	want, err := writeSynthetic(&buf, 5000, ts, 7)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if d.Total != 5000 || len(d.Goroutines) != 5000 || d.Format != FormatDebug2 || d.Partial {
		t.Fatalf("total %d, %d goroutines, format %q, partial %v", d.Total, len(d.Goroutines), d.Format, d.Partial)
	}
	groups := d.Group(GroupOptions{})
	if len(groups) != len(want) {
		t.Fatalf("got %d groups, want %d", len(groups), len(want))
	}
	for i, g := range groups {
		// The template index is in the innermost function: (*WorkerN).
		var ti int
		if _, err := fmt.Sscanf(g.Frames[0].Function[strings.Index(g.Frames[0].Function, "Worker"):], "Worker%d", &ti); err != nil {
			t.Fatalf("group %d: %v", i, err)
		}
		w, tmpl := want[ti], ts[ti]
		if g.Count != w.count || g.MinWait != w.minWait || g.MaxWait != w.maxWait || !slices.Equal(g.IDs, w.ids) {
			t.Errorf("template %d: count %d wait %v..%v ids %v; want %d %v..%v %v", ti, g.Count, g.MinWait, g.MaxWait, g.IDs, w.count, w.minWait, w.maxWait, w.ids)
		}
		if g.State != tmpl.state || g.LockedToThread != tmpl.locked || len(g.Frames) != len(tmpl.frames) || g.CreatedBy.Function != tmpl.createdBy.Function {
			t.Errorf("template %d: state %q locked %v %d frames created by %s", ti, g.State, g.LockedToThread, len(g.Frames), g.CreatedBy.Function)
		}
		for k, f := range tmpl.frames {
			wantFrame(t, fmt.Sprintf("template %d frame %d", ti, k), g.Frames[k], f.Function, f.File, f.Line)
		}
		if i > 0 {
			p := groups[i-1]
			if p.Count < g.Count || (p.Count == g.Count && p.MaxWait < g.MaxWait) {
				t.Errorf("groups %d and %d out of order: %d/%v then %d/%v", i-1, i, p.Count, p.MaxWait, g.Count, g.MaxWait)
			}
		}
	}
}

const groupDump = `goroutine 1 [chan receive, 3 minutes]:
main.a()
	/src/main.go:10 +0x1
created by main.main
	/src/main.go:5 +0x2

goroutine 2 [chan receive, 7 minutes]:
main.a()
	/src/main.go:10 +0x1
created by main.main
	/src/main.go:6 +0x2

goroutine 3 [chan receive]:
main.a()
	/src/main.go:10 +0x1
created by main.main
	/src/main.go:5 +0x2

goroutine 4 [select]:
main.a()
	/src/main.go:10 +0x1
created by main.main
	/src/main.go:5 +0x2

goroutine 5 [chan receive, locked to thread]:
main.a()
	/src/main.go:10 +0x1
created by main.main
	/src/main.go:5 +0x2

goroutine 6 [chan receive]:
main.a()
	/src/main.go:10 +0x1
created by main.other
	/src/main.go:5 +0x2

goroutine 7 [chan receive]:
main.a()
	/src/main.go:11 +0x1
created by main.main
	/src/main.go:5 +0x2

goroutine 8 [IO wait, 2 minutes]:
net.(*conn).Read()
	/go/src/net/net.go:1 +0x1
main.b()
	/src/b.go:3 +0x1
`

func TestGroupKeysAndOptions(t *testing.T) {
	d := mustParse(t, groupDump)
	groups := d.Group(GroupOptions{})
	// Goroutines 1-3 share stack, state and created-by function (lines of
	// the go statement may differ); 4 differs by state, 5 by the lock, 6 by
	// creator, 7 by a line.
	if len(groups) != 6 {
		t.Fatalf("got %d groups, want 6", len(groups))
	}
	g := groups[0]
	if g.Count != 3 || !slices.Equal(g.IDs, []int64{1, 2, 3}) || g.MinWait != 0 || g.MaxWait != 7*time.Minute || g.State != "chan receive" {
		t.Errorf("first group = %+v", g)
	}
	if groups[1].IDs[0] != 8 || groups[1].MaxWait != 2*time.Minute {
		t.Errorf("second group should be the longest-waiting single: %+v", groups[1])
	}
	keys := map[string]bool{}
	for _, g := range groups {
		if len(g.Key()) != 32 || keys[g.Key()] {
			t.Errorf("bad or duplicate key %q", g.Key())
		}
		keys[g.Key()] = true
	}
	// Keys are stable across parses.
	again := mustParse(t, groupDump).Group(GroupOptions{})
	for i := range groups {
		if groups[i].Key() != again[i].Key() {
			t.Errorf("key %d changed between parses", i)
		}
	}

	if got := d.Group(GroupOptions{StackOnly: true}); len(got) != 3 || got[0].Count != 6 || got[0].State != "" || got[0].CreatedBy != nil {
		t.Errorf("StackOnly: %d groups, first %+v; want 3 groups, first of 6 with mixed state and creator", len(got), got[0])
	}
	if got := d.Group(GroupOptions{MinWait: 2 * time.Minute}); len(got) != 2 || got[0].Count != 2 || got[1].Count != 1 {
		t.Errorf("MinWait 2m: %d groups", len(got))
	}
	if got := d.Group(GroupOptions{Filter: regexp.MustCompile(`net\.go`)}); len(got) != 1 || got[0].IDs[0] != 8 {
		t.Errorf("Filter by file: %+v", got)
	}
	if got := d.Group(GroupOptions{Filter: regexp.MustCompile(`^main\.other$`)}); len(got) != 1 || got[0].IDs[0] != 6 {
		t.Errorf("Filter by created-by: %+v", got)
	}
	if got := d.Group(GroupOptions{MaxIDs: 2}); len(got[0].IDs) != 2 {
		t.Errorf("MaxIDs 2: %v", got[0].IDs)
	}
	if got := d.Group(GroupOptions{MaxIDs: -1}); got[0].IDs != nil {
		t.Errorf("MaxIDs -1: %v", got[0].IDs)
	}
}

func TestGroupLabelsAndDebug1Counts(t *testing.T) {
	d := mustParse(t, `goroutine profile: total 7
4 @ 0x1 0x2
# labels: {"handler":"GET /x", "quote":"a\"b"}
#	0x1	main.a+0x1	/src/a.go:1

2 @ 0x1 0x3
# labels: {"handler":"POST /y"}
#	0x1	main.a+0x1	/src/a.go:1

1 @ 0x5
#	0x5	main.b+0x1	/src/b.go:2
`)
	if d.Total != 7 || d.DeclaredTotal != 7 || d.Partial {
		t.Fatalf("total %d declared %d partial %v", d.Total, d.DeclaredTotal, d.Partial)
	}
	if l := d.Goroutines[0].Labels; l["handler"] != "GET /x" || l["quote"] != `a"b` {
		t.Errorf("labels = %v", l)
	}
	groups := d.Group(GroupOptions{})
	if len(groups) != 2 || groups[0].Count != 6 || groups[0].Labels != nil || groups[1].Count != 1 {
		t.Errorf("groups: %d, first %+v", len(groups), groups[0])
	}
	one := mustParse(t, "4 @ 0x1\n# labels: {\"k\":\"v\"}\n#\t0x1\tmain.a+0x1\t/src/a.go:1\n")
	if g := one.Group(GroupOptions{}); g[0].Labels["k"] != "v" || g[0].Count != 4 || g[0].IDs != nil {
		t.Errorf("uniform labels lost: %+v", g[0])
	}
}

func TestDiff(t *testing.T) {
	before := mustParse(t, groupDump).Group(GroupOptions{})
	grown := groupDump + `
goroutine 9 [chan receive]:
main.a()
	/src/main.go:10 +0x1
created by main.main
	/src/main.go:5 +0x2

goroutine 10 [chan receive]:
main.a()
	/src/main.go:10 +0x1
created by main.main
	/src/main.go:5 +0x2

goroutine 11 [semacquire]:
main.c()
	/src/c.go:1 +0x1
`
	// Drop goroutine 8 (the IO wait one).
	grown = strings.Replace(grown, "goroutine 8 [IO wait, 2 minutes]:\nnet.(*conn).Read()\n\t/go/src/net/net.go:1 +0x1\nmain.b()\n\t/src/b.go:3 +0x1\n", "", 1)
	after := mustParse(t, grown).Group(GroupOptions{})
	deltas := Diff(before, after)
	if len(deltas) != 7 {
		t.Fatalf("got %d deltas, want 7", len(deltas))
	}
	first, last := deltas[0], deltas[len(deltas)-1]
	if first.Before != 3 || first.After != 5 || first.Change != 2 || first.New() || first.Group.Frames[0].Function != "main.a" {
		t.Errorf("first delta = %+v", first)
	}
	if d := deltas[1]; d.Change != 1 || !d.New() || d.Group.Frames[0].Function != "main.c" {
		t.Errorf("second delta = %+v", d)
	}
	if last.Change != -1 || !last.Vanished() || last.Group.Frames[1].Function != "main.b" {
		t.Errorf("last delta = %+v", last)
	}
	for _, d := range Diff(after, after) {
		if d.Change != 0 || d.Before != d.After {
			t.Errorf("self diff: %+v", d)
		}
	}
}

// Functions the real-dump test parks goroutines in.

//go:noinline
func parkOnChan(ch <-chan struct{}) { <-ch }

//go:noinline
func parkOnMutex(mu *sync.Mutex) {
	mu.Lock()
	defer mu.Unlock()
}

//go:noinline
func parkInSleep(stop *atomic.Bool) {
	for !stop.Load() {
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRealDump parks goroutines in known functions, captures this
// process's debug=2 goroutine profile, and checks the grouped counts are
// exact; the diff against a capture taken before shows them as new.
func TestRealDump(t *testing.T) {
	capture := func() []*Group {
		var buf bytes.Buffer
		if err := pprof.Lookup("goroutine").WriteTo(&buf, 2); err != nil {
			t.Fatal(err)
		}
		d, err := Parse(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if d.Format != FormatDebug2 || d.Total != len(d.Goroutines) {
			t.Fatalf("format %q total %d for %d goroutines", d.Format, d.Total, len(d.Goroutines))
		}
		return d.Group(GroupOptions{})
	}
	before := capture()

	ch := make(chan struct{})
	var mu sync.Mutex
	var stop atomic.Bool
	var wg sync.WaitGroup
	mu.Lock()
	locked := true
	t.Cleanup(func() {
		close(ch)
		if locked {
			mu.Unlock()
		}
		stop.Store(true)
		wg.Wait()
	})
	// Plain go statements (not wg.Go) so that "created by" names this test.
	wg.Add(175)
	for i := 0; i < 100; i++ {
		go func() { defer wg.Done(); parkOnChan(ch) }()
	}
	for i := 0; i < 50; i++ {
		go func() { defer wg.Done(); parkOnMutex(&mu) }()
	}
	for i := 0; i < 25; i++ {
		go func() { defer wg.Done(); parkInSleep(&stop) }()
	}

	want := []struct {
		fn, state string
		count     int
	}{
		{"parkOnChan", "chan receive", 100},
		{"parkOnMutex", "sync.Mutex.Lock", 50},
		{"parkInSleep", "sleep", 25},
	}
	// Goroutines take a moment to reach their blocking call (and sleepers
	// wake briefly): capture until every one is parked, up to a deadline
	// that only guards against hanging.
	var after []*Group
	var got string
	for deadline := time.Now().Add(60 * time.Second); ; {
		after = capture()
		ok := true
		var sb strings.Builder
		for _, w := range want {
			var found []*Group
			for _, g := range after {
				if slices.ContainsFunc(g.Frames, func(f Frame) bool { return strings.HasSuffix(f.Function, "."+w.fn) }) {
					found = append(found, g)
				}
			}
			for _, g := range found {
				fmt.Fprintf(&sb, "%s: %d in %q created by %v; ", w.fn, g.Count, g.State, g.CreatedBy)
			}
			if len(found) != 1 || found[0].Count != w.count || found[0].State != w.state ||
				found[0].CreatedBy == nil || !strings.Contains(found[0].CreatedBy.Function, "TestRealDump") {
				ok = false
			}
		}
		got = sb.String()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines never all parked as expected: %s", got)
		}
		runtime.Gosched()
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("grouped: %s", got)

	changes := map[string]int{}
	for _, d := range Diff(before, after) {
		for _, w := range want {
			if d.Group.Frames[0].Function != "" && slices.ContainsFunc(d.Group.Frames, func(f Frame) bool { return strings.HasSuffix(f.Function, "."+w.fn) }) {
				if !d.New() {
					t.Errorf("%s group existed before", w.fn)
				}
				changes[w.fn] += d.Change
			}
		}
	}
	for _, w := range want {
		if changes[w.fn] != w.count {
			t.Errorf("diff: %s grew by %d, want %d", w.fn, changes[w.fn], w.count)
		}
	}
	mu.Unlock()
	locked = false
}
