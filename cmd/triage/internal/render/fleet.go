package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The fleet views show what many pods answered, combined (see package
// client/fleet): tables that fit 120 columns, pods named without their
// namespace when they share one, and the odd pod out in red, or marked
// with "!" when there is no colour.

// oddMark is what marks an odd value in plain text.
const oddMark = "!"

// fleetWidth is the width fleet tables aim to fit.
const fleetWidth = 120

// Odd is a cell for a value that is an outlier: red with colour, "!"
// appended without.
func Odd(st Style, text string) Cell {
	if st.Color {
		return C(Red, text)
	}
	return Cell{Text: text + oddMark}
}

// oddIf is Odd when odd, else a plain cell.
func oddIf(st Style, odd bool, text string) Cell {
	if odd {
		return Odd(st, text)
	}
	return Cell{Text: text}
}

// WriteFleetJSON writes one of client/fleet's results (MergedGoroutines,
// ExplainDiff, []ProcRow, ProfileSummary) as indented JSON with its
// snake_case tags.
func WriteFleetJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode fleet result as JSON: %w", err)
	}
	return writeIndented(w, b)
}

// podList names up to max pods, then "and N more".
func podList(pods []string, name func(string) string, max int) string {
	shown := make([]string, 0, min(len(pods), max))
	for i, p := range pods {
		if i == max {
			break
		}
		shown = append(shown, name(p))
	}
	s := strings.Join(shown, ", ")
	if more := len(pods) - len(shown); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// onPods says where a value is: "all 5 pods", "4 of 5 pods", and names
// the pods of a minority: "1 of 5: shop-d".
func onPods(pods []string, total int, name func(string) string) string {
	switch {
	case len(pods) == total && total == 2:
		return "both pods"
	case len(pods) == total:
		return fmt.Sprintf("all %d pods", total)
	case 2*len(pods) > total:
		return fmt.Sprintf("%d of %d pods", len(pods), total)
	}
	return fmt.Sprintf("%d of %d: %s", len(pods), total, podList(pods, name, 3))
}

// allBut names the pods of all that are not in pods: "all but shop-d",
// for a value most pods have.
func allBut(pods, all []string, name func(string) string) string {
	has := make(map[string]bool, len(pods))
	for _, p := range pods {
		has[p] = true
	}
	var missing []string
	for _, p := range all {
		if !has[p] {
			missing = append(missing, p)
		}
	}
	return "all but " + podList(missing, name, 3)
}
