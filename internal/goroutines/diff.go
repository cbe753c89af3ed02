package goroutines

import "sort"

// Delta is the change of one group between two dumps.
type Delta struct {
	// Key is the group's Key.
	Key string `json:"key"`
	// Group is the group in the later dump, or in the earlier one when it
	// vanished.
	Group *Group `json:"group"`
	// Before and After are the group's counts in each dump (0 if absent);
	// Change is After - Before.
	Before int `json:"before"`
	After  int `json:"after"`
	Change int `json:"change"`
}

// New reports whether the group is absent from the earlier dump.
func (d *Delta) New() bool { return d.Before == 0 }

// Vanished reports whether the group is absent from the later dump.
func (d *Delta) Vanished() bool { return d.After == 0 }

// Diff matches groups of two dumps by Key (stack and state) and reports how
// each changed, including groups that appeared or vanished. Deltas are
// sorted by Change (growth first: the leak view), then by After, then by
// Key. Both sides should come from Group with the same StackOnly setting;
// groups repeated under one key are summed.
func Diff(before, after []*Group) []*Delta {
	byKey := make(map[string]*Delta)
	var out []*Delta
	get := func(g *Group) *Delta {
		d, ok := byKey[g.Key()]
		if !ok {
			d = &Delta{Key: g.Key(), Group: g}
			byKey[g.Key()] = d
			out = append(out, d)
		}
		return d
	}
	for _, g := range after {
		if g != nil {
			d := get(g)
			d.After += g.Count
		}
	}
	for _, g := range before {
		if g != nil {
			d := get(g)
			d.Before += g.Count
		}
	}
	for _, d := range out {
		d.Change = d.After - d.Before
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Change != b.Change {
			return a.Change > b.Change
		}
		if a.After != b.After {
			return a.After > b.After
		}
		return a.Key < b.Key
	})
	return out
}
