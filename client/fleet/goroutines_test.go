package fleet

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// checkConserved asserts that merging lost or invented no goroutine: each
// pod's counts over the merged groups add up to what the pod sent, and
// every group's total is the sum of its pods' counts.
func checkConserved(t *testing.T, pods []PodGoroutines, m *MergedGoroutines) {
	t.Helper()
	sent := map[string]int64{}
	for _, p := range pods {
		for _, g := range p.Groups {
			if g.GetCount() > 0 {
				sent[p.Pod] += g.GetCount()
			}
		}
	}
	got := map[string]int64{}
	for _, g := range m.Groups {
		var sum int64
		for _, c := range g.Counts {
			got[c.Pod] += c.Count
			sum += c.Count
		}
		if sum != g.Total {
			t.Errorf("group %s: total %d, but its pods' counts add up to %d", g.Key, g.Total, sum)
		}
		if g.Pods != len(g.Counts) || g.OfPods != m.Pods {
			t.Errorf("group %s: %d of %d pods, %d counts, %d pods merged", g.Key, g.Pods, g.OfPods, len(g.Counts), m.Pods)
		}
		if !(g.Min <= g.Median && g.Median <= g.Max) {
			t.Errorf("group %s: min %d, median %d, max %d out of order", g.Key, g.Min, g.Median, g.Max)
		}
	}
	for pod, n := range sent {
		if got[pod] != n {
			t.Errorf("pod %s sent %d goroutines, the merge has %d", pod, n, got[pod])
		}
	}
	for i := 1; i < len(m.Groups); i++ {
		a, b := m.Groups[i-1], m.Groups[i]
		if a.Total < b.Total || (a.Total == b.Total && a.Key >= b.Key) {
			t.Errorf("groups %d and %d out of order: %d %s, %d %s", i-1, i, a.Total, a.Key, b.Total, b.Key)
		}
	}
}

func findGroup(m *MergedGoroutines, where string) *MergedGroup {
	for i := range m.Groups {
		if m.Groups[i].Where() == where {
			return &m.Groups[i]
		}
	}
	return nil
}

func oddPods(m *MergedGoroutines) []string {
	var out []string
	for _, o := range m.Outliers {
		if !slices.Contains(out, o.Pod) {
			out = append(out, o.Pod)
		}
	}
	slices.Sort(out)
	return out
}

func TestMergeGoroutinesRealDumps(t *testing.T) {
	all := shopPods(t)
	tests := []struct {
		name      string
		pods      []PodGoroutines
		opts      GoroutineOptions
		wantOdd   []string
		wantWhy   map[string]string // where -> a reason an outlier of that group gives
		allOn     []string          // groups (by Where) every pod has
		partialOn map[string]int    // groups (by Where) on only some pods -> pods
	}{
		{
			name:      "one pod leaks handlers",
			pods:      all,
			wantOdd:   []string{"shop/shop-c"},
			wantWhy:   map[string]string{"main.handler": WhyOnly(1, 4), "": WhyTotalHigh},
			allOn:     []string{"main.worker", "main.conn", "main.ticker"},
			partialOn: map[string]int{"main.handler": 1},
		},
		{
			name:    "healthy pods, two builds: no odd pod",
			pods:    []PodGoroutines{all[0], all[1], all[3]},
			wantOdd: nil,
			allOn:   []string{"main.worker", "main.conn", "main.ticker"},
		},
		{
			name:      "exact lines split the other build's groups",
			pods:      []PodGoroutines{all[0], all[1], all[3]},
			opts:      GoroutineOptions{ExactLines: true},
			wantOdd:   []string{"shop/shop-d"},
			partialOn: map[string]int{"main.worker": 2},
		},
		{
			name:    "two pods: the larger one is flagged",
			pods:    []PodGoroutines{all[0], all[2]},
			wantOdd: []string{"shop/shop-c"},
			wantWhy: map[string]string{"main.handler": WhyOnly(1, 2)},
		},
		{
			name:  "one pod: nothing to compare",
			pods:  []PodGoroutines{all[2]},
			allOn: []string{"main.handler", "main.worker"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := MergeGoroutinesWith(tt.pods, tt.opts)
			checkConserved(t, tt.pods, m)
			if m.Pods != len(tt.pods) {
				t.Errorf("Pods = %d, want %d", m.Pods, len(tt.pods))
			}
			if got := oddPods(m); !slices.Equal(got, tt.wantOdd) {
				t.Errorf("odd pods = %v, want %v; outliers: %+v", got, tt.wantOdd, m.Outliers)
			}
			for where, why := range tt.wantWhy {
				found := false
				for _, o := range m.Outliers {
					found = found || (o.Where == where && strings.Contains(o.Why, why))
				}
				if !found {
					t.Errorf("no outlier at %q says %q: %+v", where, why, m.Outliers)
				}
			}
			for _, where := range tt.allOn {
				g := findGroup(m, where)
				if g == nil || g.Partial() {
					t.Errorf("group %s should be on all %d pods: %+v", where, m.Pods, g)
				}
			}
			for where, n := range tt.partialOn {
				found := false
				for _, g := range m.Groups {
					found = found || (g.Where() == where && g.Pods == n && g.Partial())
				}
				if !found {
					t.Errorf("no group at %s on exactly %d of %d pods", where, n, m.Pods)
				}
			}
		})
	}
}

func TestMergeGoroutinesLineVariants(t *testing.T) {
	all := shopPods(t)
	m := MergeGoroutines([]PodGoroutines{all[0], all[3]})
	g := findGroup(m, "main.worker")
	if g == nil {
		t.Fatal("no worker group")
	}
	if g.LineVariants != 2 {
		t.Errorf("worker group across two builds: LineVariants = %d, want 2", g.LineVariants)
	}
	if g.Total != 16 || g.Min != 8 || g.Max != 8 {
		t.Errorf("worker group: total %d min %d max %d, want 16 8 8", g.Total, g.Min, g.Max)
	}
	m = MergeGoroutines([]PodGoroutines{all[0], all[1]})
	if g := findGroup(m, "main.worker"); g == nil || g.LineVariants != 0 {
		t.Errorf("same build: LineVariants = %+v, want 0", g)
	}
}

func TestMergeGoroutinesGolden(t *testing.T) {
	goldenJSON(t, "goroutines_merged.json", MergeGoroutines(shopPods(t)))
}

// TestMergeGoroutinesPerGoroutineFields checks that ids, waits and labels
// never split a group, and that waits are merged into a range.
func TestMergeGoroutinesPerGoroutineFields(t *testing.T) {
	frames := []*triagev1.StackFrame{{Function: "main.worker", File: "/app/main.go", Line: 17}}
	mk := func(pod string, count int64, ids []int64, wait int, labels map[string]string) PodGoroutines {
		g := &triagev1.GoroutineGroup{Count: count, State: "chan receive", Frames: frames, Ids: ids, Labels: labels}
		if wait > 0 {
			g.MinWait, g.MaxWait = dur(wait), dur(wait*2)
		}
		return PodGoroutines{Pod: pod, Summary: &triagev1.GoroutineSummary{Total: count}, Groups: []*triagev1.GoroutineGroup{g}}
	}
	pods := []PodGoroutines{
		mk("ns/a", 3, []int64{1, 2}, 1, map[string]string{"req": "x"}),
		mk("ns/b", 4, []int64{9}, 5, nil),
		mk("ns/c", 5, nil, 0, map[string]string{"req": "y"}),
	}
	m := MergeGoroutines(pods)
	if len(m.Groups) != 1 {
		t.Fatalf("%d groups, want 1: %+v", len(m.Groups), m.Groups)
	}
	g := m.Groups[0]
	if g.Total != 12 || g.Pods != 3 {
		t.Errorf("total %d on %d pods, want 12 on 3", g.Total, g.Pods)
	}
	if g.MinWait != dur(1).AsDuration() || g.MaxWait != dur(10).AsDuration() {
		t.Errorf("wait %v..%v, want 1m..10m", g.MinWait, g.MaxWait)
	}
	if g.Counts[0].Pod != "ns/c" || g.Median != 4 {
		t.Errorf("counts %+v median %d: want ns/c first and median 4", g.Counts, g.Median)
	}
}

// TestMergeGoroutinesMixedPaths merges a profile-path pod (no states) with
// text-path pods: stacks still match.
func TestMergeGoroutinesMixedPaths(t *testing.T) {
	all := shopPods(t)
	prof := podFromFile(t, "shop/shop-e", "shop-a.txt")
	prof.Summary.Path = triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE
	for _, g := range prof.Groups {
		g.State, g.CreatedBy = "", nil
	}
	pods := []PodGoroutines{all[0], all[1], prof}
	m := MergeGoroutines(pods)
	checkConserved(t, pods, m)
	if !m.StackOnly || len(m.Notes) == 0 {
		t.Errorf("StackOnly = %v, notes %v: want a stack-only merge with a note", m.StackOnly, m.Notes)
	}
	for _, where := range []string{"main.worker", "main.conn"} {
		if g := findGroup(m, where); g == nil || g.Partial() {
			t.Errorf("%s should be on all pods in a stack-only merge: %+v", where, g)
		}
	}
	if len(m.Outliers) != 0 {
		t.Errorf("outliers %+v, want none", m.Outliers)
	}
}

func TestMergeGoroutinesEdges(t *testing.T) {
	if m := MergeGoroutines(nil); m.Pods != 0 || len(m.Groups) != 0 || m.Outliers == nil {
		t.Errorf("nil input: %+v", m)
	}
	// A repeated pod name is folded; a nil summary totals the groups.
	g := &triagev1.GoroutineGroup{Count: 2, State: "select", Frames: []*triagev1.StackFrame{{Function: "main.f", File: "a.go", Line: 1}}}
	m := MergeGoroutines([]PodGoroutines{{Pod: "ns/a", Groups: []*triagev1.GoroutineGroup{g}}, {Pod: "ns/a", Groups: []*triagev1.GoroutineGroup{g, nil, {Count: 0}}}})
	if m.Pods != 1 || m.Total != 4 || len(m.Groups) != 1 || m.Groups[0].Total != 4 {
		t.Errorf("folded pod: %+v", m)
	}
}

// TestMergeGoroutinesLive merges real dumps of this test process, one per
// "pod", each taken with a different number of goroutines parked in
// parkedWorker: the dump with many more is the odd one out.
func TestMergeGoroutinesLive(t *testing.T) {
	var pods []PodGoroutines
	for i, n := range []int{5, 5, 60, 6} {
		release := make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go parkedWorker(&wg, release)
		}
		dump := dumpWhenParked(t, n)
		close(release)
		wg.Wait()
		pods = append(pods, podFromDump(t, fmt.Sprintf("live/pod-%d", i), dump))
	}
	m := MergeGoroutines(pods)
	checkConserved(t, pods, m)
	var g *MergedGroup
	for i := range m.Groups {
		if m.Groups[i].Where() == parkedWhere && m.Groups[i].State == "chan receive" {
			g = &m.Groups[i]
		}
	}
	if g == nil {
		t.Fatal("no chan receive group for parkedWorker")
	}
	if g.Total != 5+5+60+6 || g.Pods != 4 {
		t.Errorf("parkedWorker: total %d on %d pods, want 76 on 4", g.Total, g.Pods)
	}
	var flagged []string
	for _, c := range g.Counts {
		if c.Outlier != "" {
			flagged = append(flagged, c.Pod+"="+c.Outlier)
		}
	}
	if !slices.Equal(flagged, []string{"live/pod-2=high"}) {
		t.Errorf("flagged %v, want only live/pod-2 high; counts %+v", flagged, g.Counts)
	}
}

const parkedWhere = "github.com/triage-sh/triage/client/fleet.parkedWorker"

func parkedWorker(wg *sync.WaitGroup, release <-chan struct{}) {
	defer wg.Done()
	<-release
}

// dumpWhenParked returns a debug=2 dump of this process taken once n
// parkedWorkers wait on their channel.
func dumpWhenParked(t *testing.T, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var b bytes.Buffer
		if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
			t.Fatal(err)
		}
		var parked int64
		for _, g := range podFromDump(t, "probe", b.Bytes()).Groups {
			if g.GetState() == "chan receive" && len(g.GetFrames()) > 0 && g.GetFrames()[0].GetFunction() == parkedWhere {
				parked += g.GetCount()
			}
		}
		if parked == int64(n) {
			return b.Bytes()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d goroutines parked after 5s", parked, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkMergeGoroutines merges 100 pods of 500 groups each, most shared.
func BenchmarkMergeGoroutines(b *testing.B) {
	var pods []PodGoroutines
	for p := range 100 {
		pod := PodGoroutines{Pod: fmt.Sprintf("shop/shop-%03d", p), Summary: &triagev1.GoroutineSummary{Path: triagev1.GoroutinePath_GOROUTINE_PATH_TEXT}}
		for g := range 500 {
			fn := fmt.Sprintf("main.handler%d", g)
			if g%50 == 0 {
				fn = fmt.Sprintf("main.rare%d_%d", g, p%7)
			}
			pod.Groups = append(pod.Groups, &triagev1.GoroutineGroup{Count: int64(1 + (g*p)%13), State: "select", Frames: []*triagev1.StackFrame{
				{Function: "runtime.gopark", File: "/usr/local/go/src/runtime/proc.go", Line: 435},
				{Function: fn, File: "/app/main.go", Line: int64(g)},
				{Function: "main.main", File: "/app/main.go", Line: 9},
			}})
			pod.Summary.Total += pod.Groups[g].Count
		}
		pods = append(pods, pod)
	}
	b.ReportAllocs()
	for b.Loop() {
		MergeGoroutines(pods)
	}
}
