package render

import (
	"encoding/json"
	"fmt"
	"io"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// GoroutineDelta is how one group changed between two dumps.
type GoroutineDelta struct {
	// Group is the group in the later dump, or the earlier one when it vanished.
	Group *triagev1.GoroutineGroup
	// Before and After are its counts; Change is After - Before.
	Before, After, Change int64
}

// Status is "grew", "new", "shrank", "vanished" or "same".
func (d GoroutineDelta) Status() string {
	switch {
	case d.Before == 0:
		return "new"
	case d.After == 0:
		return "vanished"
	case d.Change > 0:
		return "grew"
	case d.Change < 0:
		return "shrank"
	}
	return "same"
}

// GoroutineDiffView is the leak view: two dumps and how their groups changed.
type GoroutineDiffView struct {
	// Before and After name the two dumps ("saved.json", "live dump").
	Before, After string
	// BeforeTotal and AfterTotal are their numbers of goroutines.
	BeforeTotal, AfterTotal int64
	// Deltas are sorted by growth, largest first, as goroutines.Diff sorts them.
	Deltas []GoroutineDelta
	// Notes say how the dumps were compared.
	Notes []string
}

// GoroutineDiff writes the groups that changed, largest growth first;
// unchanged groups are only counted.
func GoroutineDiff(w io.Writer, v *GoroutineDiffView, o GoroutineOptions, st Style) error {
	ew := &errWriter{w: w}
	counts := map[string]int{}
	for _, d := range v.Deltas {
		counts[d.Status()]++
	}
	fmt.Fprintf(ew, "%s · %s\n",
		st.Paint(Bold, fmt.Sprintf("%d → %d goroutines (%+d)", v.BeforeTotal, v.AfterTotal, v.AfterTotal-v.BeforeTotal)),
		fmt.Sprintf("groups: %d grew, %d new, %d shrank, %d vanished, %d unchanged", counts["grew"], counts["new"], counts["shrank"], counts["vanished"], counts["same"]))
	fmt.Fprintf(ew, "before: %s\nafter:  %s\n", v.Before, v.After)
	for _, n := range v.Notes {
		fmt.Fprintln(ew, st.Paint(Yellow, "note: ")+n)
	}
	if counts["same"] == len(v.Deltas) {
		fmt.Fprintln(ew)
		Line(ew, "no group changed")
	}
	for _, d := range v.Deltas {
		if d.Status() == "same" {
			continue
		}
		fmt.Fprintln(ew)
		lead := fmt.Sprintf("%+d %s (%d → %d)", d.Change, d.Status(), d.Before, d.After)
		if d.Change > 0 {
			lead = st.Paint(Red, lead)
		}
		group(ew, d.Group, lead, o, st)
	}
	return ew.err
}

// GoroutineDiffDoc is the JSON of a diff: the totals and the groups that
// changed, largest growth first.
type GoroutineDiffDoc struct {
	BeforeTotal int64  `json:"before_total"`
	AfterTotal  int64  `json:"after_total"`
	Change      int64  `json:"change"`
	Before      string `json:"before"`
	After       string `json:"after"`
	// Unchanged is the number of groups with the same count in both.
	Unchanged int        `json:"unchanged"`
	Notes     []string   `json:"notes,omitempty"`
	Deltas    []DeltaDoc `json:"deltas"`
}

// DeltaDoc is one changed group.
type DeltaDoc struct {
	Status string            `json:"status"`
	Before int64             `json:"before"`
	After  int64             `json:"after"`
	Change int64             `json:"change"`
	Group  GoroutineGroupDoc `json:"group"`
}

// WriteGoroutineDiffDoc writes the diff as indented JSON.
func WriteGoroutineDiffDoc(w io.Writer, v *GoroutineDiffView) error {
	d := GoroutineDiffDoc{
		BeforeTotal: v.BeforeTotal, AfterTotal: v.AfterTotal, Change: v.AfterTotal - v.BeforeTotal,
		Before: v.Before, After: v.After, Notes: v.Notes, Deltas: []DeltaDoc{},
	}
	for _, x := range v.Deltas {
		if x.Status() == "same" {
			d.Unchanged++
			continue
		}
		d.Deltas = append(d.Deltas, DeltaDoc{Status: x.Status(), Before: x.Before, After: x.After, Change: x.Change, Group: GroupDoc(x.Group)})
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode goroutine diff JSON: %w", err)
	}
	return writeIndented(w, b)
}
