package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/triage-sh/triage/client/fleet"
)

// valueWidth bounds the value column of the explain drift table.
const valueWidth = 56

// FleetExplain writes what differs between pods' explanations: the
// drifting values, each with the pods that hold each value (the minority
// highlighted), the findings not on every pod, the findings on all of
// them once, and how many per-pod values differ, as they should.
func FleetExplain(w io.Writer, d *fleet.ExplainDiff, pods []string, st Style) error {
	ew := &errWriter{w: w}
	name := fleet.ShortNames(pods)
	var partial, common []fleet.FindingSpread
	for _, f := range d.Findings {
		if f.All {
			common = append(common, f)
		} else {
			partial = append(partial, f)
		}
	}
	switch {
	case d.Pods == 0:
		fmt.Fprintln(ew, "no pod answered")
		return ew.err
	case d.Pods == 1:
		fmt.Fprintln(ew, st.Paint(Bold, "1 pod: nothing to compare"))
	case d.Agree:
		fmt.Fprintln(ew, st.Paint(Bold, strings.Replace(onPods(pods, d.Pods, name), " pods", " pods agree", 1))+" · same versions, settings, capabilities and findings")
	default:
		fmt.Fprintf(ew, "%s · %s, %s\n", st.Paint(Bold, fmt.Sprintf("%d pods differ", d.Pods)),
			Plural(len(d.Differences), "value differs", "values differ"), Plural(len(partial), "finding is not on every pod", "findings are not on every pod"))
	}

	if len(d.Differences) > 0 {
		Section(ew, st, false, fmt.Sprintf("DIFFERENCES (%d)", len(d.Differences)))
		t := NewTable("KIND", "NAME", "VALUE", "PODS")
		for _, x := range d.Differences {
			for i, v := range x.Values {
				kind, nm := "", ""
				if i == 0 {
					kind, nm = x.Kind, x.Name
				}
				val := v.Value
				switch {
				case v.Missing:
					val = "(not reported)"
				case val == "":
					val = `""`
				}
				if v.Source != "" {
					val += " (" + v.Source + ")"
				}
				// The first value is the one most pods have; the others are odd.
				t.Row(kind, nm, oddIf(st, i > 0, Truncate(val, valueWidth)), onPods(v.Pods, d.Pods, name))
			}
		}
		t.Write(ew, st)
	}

	if len(partial) > 0 {
		Section(ew, st, false, fmt.Sprintf("FINDINGS ON SOME PODS (%d)", len(partial)))
		fleetFindings(ew, partial, pods, d.Pods, name, st)
	}
	if len(common) > 0 {
		Section(ew, st, false, fmt.Sprintf("FINDINGS ON EVERY POD (%d)", len(common)))
		fleetFindings(ew, common, pods, d.Pods, name, st)
	}
	if len(d.Expected) > 0 {
		Section(ew, st, false, "DIFFERS PER POD (EXPECTED)")
		var parts []string
		for _, e := range d.Expected {
			parts = append(parts, fmt.Sprintf("%s (%d values)", e.Name, e.Distinct))
		}
		Line(ew, "%s", st.Paint(Dim, strings.Join(parts, ", ")))
	}
	return ew.err
}

// fleetFindings lists findings with the pods that have them; for a
// finding most pods have, the pods without it are named and marked.
func fleetFindings(w io.Writer, fs []fleet.FindingSpread, all []string, total int, name func(string) string, st Style) {
	t := NewTable("SEVERITY", "CODE", "PODS", "MESSAGE")
	for _, f := range fs {
		code := f.Code
		if f.Subject != "" {
			code += " (" + f.Subject + ")"
		}
		pods := Cell{Text: onPods(f.Pods, total, name)}
		switch {
		case f.All:
		case 2*len(f.Pods) > total && len(all) == total:
			pods = Odd(st, allBut(f.Pods, all, name))
		default:
			pods = Odd(st, pods.Text)
		}
		t.Row(C(SeverityColor(f.Severity), SeverityLabel(f.Severity)), code, pods, Truncate(f.Message, 50))
	}
	t.Write(w, st)
}
