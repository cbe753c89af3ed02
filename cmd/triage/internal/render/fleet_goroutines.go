package render

import (
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client/fleet"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// FleetGoroutineOptions shape the merged goroutines view.
type FleetGoroutineOptions struct {
	// MaxGroups is how many groups the table shows; 0 means 15, negative all.
	MaxGroups int
	// MaxPods is how many pods the pod table lists before it shows only
	// the odd ones; 0 means 20.
	MaxPods int
	// Stacks prints the stack of every group shown, after the tables.
	Stacks bool
	// Goroutine shapes the stacks.
	Goroutine GoroutineOptions
}

// maxOutliers bounds the odd-pods-out table; -o json lists them all.
const maxOutliers = 20

// FleetGoroutines writes goroutines merged across pods: the pods' totals,
// the odd pods out, then the groups, largest first, with how many pods
// have each and the spread of their counts.
func FleetGoroutines(w io.Writer, m *fleet.MergedGoroutines, o FleetGoroutineOptions, st Style) error {
	ew := &errWriter{w: w}
	pods := make([]string, len(m.Totals))
	for i, t := range m.Totals {
		pods[i] = t.Pod
	}
	name := fleet.ShortNames(pods)
	fmt.Fprintf(ew, "%s\n", st.Paint(Bold, fmt.Sprintf("%s on %s, in %s",
		Plural(int(m.Total), "goroutine", "goroutines"), Plural(m.Pods, "pod", "pods"), Plural(len(m.Groups), "group", "groups"))))
	for _, n := range m.Notes {
		fmt.Fprintln(ew, st.Paint(Yellow, "note: ")+n)
	}
	if !m.ExactLines {
		var variants int
		for _, g := range m.Groups {
			if g.LineVariants > 1 {
				variants++
			}
		}
		if variants > 0 {
			fmt.Fprintln(ew, st.Paint(Yellow, "note: ")+fmt.Sprintf("%s matched across different line numbers: are the pods running different builds?", Plural(variants, "group was", "groups were")))
		}
	}

	fleetPodTotals(ew, m, name, o, st)
	fleetOutliers(ew, m, name, st)

	Section(ew, st, false, fmt.Sprintf("GROUPS (%d)", len(m.Groups)))
	maxGroups := o.MaxGroups
	if maxGroups == 0 {
		maxGroups = 15
	}
	shown := m.Groups
	if maxGroups > 0 && len(shown) > maxGroups {
		shown = shown[:maxGroups]
	}
	odd := map[string]bool{}
	for _, x := range m.Outliers {
		if x.Group != "" {
			odd[x.Group] = true
		}
	}
	t := NewTable("", "TOTAL", "PODS", "MIN", "MEDIAN", "MAX", "STATE", "WAIT", "WHERE").AlignRight(1, 3, 4, 5)
	for _, g := range shown {
		mark := ""
		if odd[g.Key] {
			mark = oddMark
		}
		podsCell := Cell{Text: fmt.Sprintf("%d/%d", g.Pods, g.OfPods)}
		if g.Partial() {
			podsCell.Color = Yellow
		}
		t.Row(C(Red, mark), g.Total, podsCell, g.Min, g.Median, g.Max, Truncate(orDash(g.State), 22), waitRange(g), Truncate(g.Where(), 56))
	}
	t.Write(ew, st)
	if more := len(m.Groups) - len(shown); more > 0 {
		Line(ew, "%s", st.Paint(Dim, fmt.Sprintf("… %s (-o json lists them all)", Plural(more, "more group", "more groups"))))
	}
	if o.Stacks {
		for _, g := range shown {
			fmt.Fprintln(ew)
			lead := fmt.Sprintf("%s on %d/%d pods", Plural(int(g.Total), "goroutine", "goroutines"), g.Pods, g.OfPods)
			group(ew, mergedProto(g), lead, o.Goroutine, st)
			var counts []string
			for _, c := range g.Counts {
				s := fmt.Sprintf("%s=%d", name(c.Pod), c.Count)
				if c.Outlier != "" {
					s = st.Paint(Red, s+oddMark)
				}
				counts = append(counts, s)
			}
			Line(ew, "%s%s", st.Paint(Dim, "per pod: "), strings.Join(counts, " "))
		}
	}
	return ew.err
}

func fleetPodTotals(w io.Writer, m *fleet.MergedGoroutines, name func(string) string, o FleetGoroutineOptions, st Style) {
	Section(w, st, false, fmt.Sprintf("PODS (%d)", len(m.Totals)))
	maxPods := o.MaxPods
	if maxPods == 0 {
		maxPods = 20
	}
	t := NewTable("POD", "GOROUTINES", "GROUPS", "PATH", "SOURCE").AlignRight(1, 2)
	var hidden []int64
	for _, p := range m.Totals {
		if len(m.Totals) > maxPods && p.Outlier == "" {
			hidden = append(hidden, p.Total)
			continue
		}
		total := fmt.Sprint(p.Total)
		if p.Matched != p.Total {
			total = fmt.Sprintf("%d of %d", p.Matched, p.Total)
		}
		t.Row(oddIf(st, p.Outlier != "", name(p.Pod)), oddIf(st, p.Outlier != "", total), p.Groups, orDash(p.Path), orDash(p.Source))
	}
	if t.Len() > 0 {
		t.Write(w, st)
	}
	if len(hidden) > 0 {
		lo, hi := hidden[0], hidden[0]
		for _, v := range hidden {
			lo, hi = min(lo, v), max(hi, v)
		}
		Line(w, "%s", st.Paint(Dim, fmt.Sprintf("%s within the usual range: %d to %d goroutines", Plural(len(hidden), "other pod", "other pods"), lo, hi)))
	}
}

func fleetOutliers(w io.Writer, m *fleet.MergedGoroutines, name func(string) string, st Style) {
	Section(w, st, false, fmt.Sprintf("ODD PODS OUT (%d)", len(m.Outliers)))
	if len(m.Outliers) == 0 {
		if m.Pods < 2 {
			Line(w, "one pod: nothing to compare")
		} else {
			Line(w, "%s", st.Paint(Green, "none: every pod looks like the others"))
		}
		return
	}
	t := NewTable("POD", "COUNT", "TYPICAL", "WHERE", "WHY").AlignRight(1, 2)
	for i, x := range m.Outliers {
		if i == maxOutliers {
			break
		}
		where := "(all goroutines)"
		if x.Group != "" {
			where = Truncate(x.Where, 40)
		}
		t.Row(Odd(st, name(x.Pod)), x.Count, x.Typical, where, x.Why)
	}
	t.Write(w, st)
	if more := len(m.Outliers) - maxOutliers; more > 0 {
		Line(w, "%s", st.Paint(Dim, fmt.Sprintf("… %d more (-o json lists them all)", more)))
	}
}

func waitRange(g fleet.MergedGroup) string {
	switch {
	case g.MaxWait == 0:
		return "-"
	case g.MinWait == g.MaxWait:
		return Duration(g.MaxWait)
	}
	return Duration(g.MinWait) + "-" + Duration(g.MaxWait)
}

// mergedProto turns a merged group back into the API's group, so that its
// stack prints as a single pod's does.
func mergedProto(g fleet.MergedGroup) *triagev1.GoroutineGroup {
	out := &triagev1.GoroutineGroup{Count: g.Total, State: g.State, LockedToThread: g.LockedToThread, FramesElided: g.FramesElided}
	if g.MaxWait > 0 {
		out.MinWait, out.MaxWait = durationpb.New(g.MinWait), durationpb.New(g.MaxWait)
	}
	for _, f := range g.Frames {
		out.Frames = append(out.Frames, &triagev1.StackFrame{Function: f.Function, File: f.File, Line: f.Line})
	}
	if c := g.CreatedBy; c != nil {
		out.CreatedBy = &triagev1.StackFrame{Function: c.Function, File: c.File, Line: c.Line}
	}
	return out
}
