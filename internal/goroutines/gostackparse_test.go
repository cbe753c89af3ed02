package goroutines

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gspGoroutine is the model of github.com/DataDog/gostackparse, whose
// expected outputs are the fixtures' *.golden.json files. Wait is in
// nanoseconds (time.Duration).
type gspGoroutine struct {
	ID             int64
	State          string
	Wait           time.Duration
	LockedToThread bool
	Stack          []*gspFrame
	FramesElided   bool
	CreatedBy      *gspFrame
	Ancestor       *gspGoroutine
}

type gspFrame struct {
	Func string
	File string
	Line int
}

// TestGostackparseGoldens compares Parse with gostackparse's expected output
// for the same input, field by field. There are no deliberate differences
// in these fields: function names agree (both strip the argument list and
// keep "(*T)", "funcN" and "(...)"-elided inlined frames as printed);
// gostackparse's nested Ancestor chain is our flat Ancestors slice (parent
// first), and our extra fields (CreatedByGoroutine, Args, PC, Offset) are
// not in its model.
func TestGostackparseGoldens(t *testing.T) {
	dir := fixturesDir(t)
	goldens, err := filepath.Glob(filepath.Join(dir, "*.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(goldens) == 0 {
		t.Fatalf("no *.golden.json in %s", dir)
	}
	for _, golden := range goldens {
		name := strings.TrimSuffix(filepath.Base(golden), ".golden.json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			var want struct {
				Errors     []string
				Goroutines []*gspGoroutine
			}
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("decoding %s: %v", golden, err)
			}
			if len(want.Errors) != 0 {
				t.Fatalf("golden has errors %v: not handled by this test", want.Errors)
			}
			d, err := parseFile(t, filepath.Join(dir, name+".txt"))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(d.Goroutines) != len(want.Goroutines) {
				t.Fatalf("got %d goroutines, golden has %d", len(d.Goroutines), len(want.Goroutines))
			}
			for i, w := range want.Goroutines {
				compareGSP(t, fmt.Sprintf("goroutine[%d]", i), d.Goroutines[i], w)
			}
		})
	}
}

func compareGSP(t *testing.T, what string, g *Goroutine, w *gspGoroutine) {
	t.Helper()
	if g.ID != w.ID || g.State != w.State || g.Wait != w.Wait || g.LockedToThread != w.LockedToThread || g.FramesElided != w.FramesElided {
		t.Errorf("%s: got id=%d state=%q wait=%v locked=%v elided=%v, golden id=%d state=%q wait=%v locked=%v elided=%v",
			what, g.ID, g.State, g.Wait, g.LockedToThread, g.FramesElided, w.ID, w.State, w.Wait, w.LockedToThread, w.FramesElided)
	}
	compareGSPFrames(t, what+" (id "+fmt.Sprint(w.ID)+")", g.Frames, g.CreatedBy, w.Stack, w.CreatedBy)
	// Ancestors: golden nests them, we list them parent first.
	a := w.Ancestor
	for k := 0; a != nil; k++ {
		awhat := fmt.Sprintf("%s ancestor[%d]", what, k)
		if k >= len(g.Ancestors) {
			t.Errorf("%s: missing (golden has goroutine %d)", awhat, a.ID)
			return
		}
		ga := g.Ancestors[k]
		if ga.ID != a.ID || ga.FramesElided != a.FramesElided || a.State != "" || a.Wait != 0 || a.LockedToThread {
			t.Errorf("%s: got id=%d elided=%v, golden %+v", awhat, ga.ID, ga.FramesElided, a)
		}
		compareGSPFrames(t, awhat, ga.Frames, ga.CreatedBy, a.Stack, a.CreatedBy)
		a = a.Ancestor
		if a == nil && k+1 != len(g.Ancestors) {
			t.Errorf("%s: got %d ancestors, golden %d", what, len(g.Ancestors), k+1)
		}
	}
	if w.Ancestor == nil && len(g.Ancestors) != 0 {
		t.Errorf("%s: got %d ancestors, golden none", what, len(g.Ancestors))
	}
}

func compareGSPFrames(t *testing.T, what string, frames []Frame, createdBy *Frame, stack []*gspFrame, wcb *gspFrame) {
	t.Helper()
	if len(frames) != len(stack) {
		t.Errorf("%s: got %d frames, golden %d", what, len(frames), len(stack))
		return
	}
	for j, f := range stack {
		wantFrame(t, fmt.Sprintf("%s frame %d", what, j), frames[j], f.Func, f.File, f.Line)
	}
	switch {
	case (createdBy == nil) != (wcb == nil):
		t.Errorf("%s: created by %+v, golden %+v", what, createdBy, wcb)
	case wcb != nil:
		wantFrame(t, what+" created by", *createdBy, wcb.Func, wcb.File, wcb.Line)
	}
}

// TestDebug1MatchesDebug2 checks that the debug=1 and debug=2 dumps taken
// from the same program agree: the same totals, and grouping by stack alone
// gives the same counts for the same stacks. Known differences are
// excluded: debug=1 shows runtime.main under main.main, which debug=2
// hides; the goroutine writing the profile is in different pprof code in
// each capture; and over HTTP, the two captures were separate requests, so
// the requesting main goroutine (main.glob..func7 vs func8) and the
// server's background connection reader (line 689 vs 690) differ.
func TestDebug1MatchesDebug2(t *testing.T) {
	dir := fixturesDir(t)
	for prefix, exclude := range map[string][]string{
		"go-profiler-notes_2.pprof.lookup.goroutine":   {"pprof."},
		"go-profiler-notes_2.net.http.pprof.goroutine": {"pprof.", "main.writeProfiles", "net/http.(*connReader).backgroundRead"},
	} {
		t.Run(prefix, func(t *testing.T) {
			d1, err := parseFile(t, filepath.Join(dir, prefix+".debug1.txt"))
			if err != nil {
				t.Fatal(err)
			}
			d2, err := parseFile(t, filepath.Join(dir, prefix+".debug2.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if d1.Total != d2.Total || d1.DeclaredTotal != d2.Total {
				t.Errorf("totals: debug1 %d (declared %d), debug2 %d", d1.Total, d1.DeclaredTotal, d2.Total)
			}
			c1, c2 := stackCounts(d1, exclude), stackCounts(d2, exclude)
			if len(c1) == 0 {
				t.Fatal("no comparable stacks")
			}
			for k, n := range c1 {
				if c2[k] != n {
					t.Errorf("stack %s: debug1 %d, debug2 %d", k, n, c2[k])
				}
			}
			for k, n := range c2 {
				if _, ok := c1[k]; !ok {
					t.Errorf("stack %s: only in debug2 (%d)", k, n)
				}
			}
			// Without StackOnly, debug=2 keeps apart the two shortSleepLoop
			// goroutines (created by different functions) that debug=1
			// counts as one record of 2.
			sleepers := 0
			for _, g := range d2.Group(GroupOptions{}) {
				if g.Frames[len(g.Frames)-1].Function == "main.shortSleepLoop" {
					sleepers++
					if g.Count != 1 {
						t.Errorf("debug2 shortSleepLoop group count = %d, want 1", g.Count)
					}
				}
			}
			if sleepers != 2 || d1.Goroutines[0].Count != 2 {
				t.Errorf("shortSleepLoop: %d debug2 groups, debug1 record count %d; want 2 and 2", sleepers, d1.Goroutines[0].Count)
			}
		})
	}
}

// stackCounts counts goroutines by stack, leaving out stacks with a
// function containing one of exclude.
func stackCounts(d *Dump, exclude []string) map[string]int {
	out := map[string]int{}
groups:
	for _, g := range d.Group(GroupOptions{StackOnly: true}) {
		var parts []string
		for i, f := range g.Frames {
			for _, x := range exclude {
				if strings.Contains(f.Function, x) {
					continue groups
				}
			}
			if i == len(g.Frames)-1 && f.Function == "runtime.main" {
				break
			}
			parts = append(parts, fmt.Sprintf("%s:%d", f.Function, f.Line))
		}
		out[strings.Join(parts, " < ")] += g.Count
	}
	return out
}
