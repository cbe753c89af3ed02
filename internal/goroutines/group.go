package goroutines

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// DefaultMaxIDs is how many goroutine IDs a Group keeps when
// GroupOptions.MaxIDs is 0.
const DefaultMaxIDs = 10

// GroupOptions select and shape the groups Group returns.
type GroupOptions struct {
	// Filter, if set, keeps only groups where some frame's function or file,
	// or the created-by function or file, matches.
	Filter *regexp.Regexp
	// MinWait, if positive, keeps only goroutines blocked at least this long
	// before grouping, so counts are of goroutines waiting that long. The
	// runtime reports waits in whole minutes from one minute on, and debug=1
	// records carry no wait, so they are all dropped by any positive MinWait.
	MinWait time.Duration
	// MaxIDs is how many goroutine IDs each group keeps (the first seen);
	// 0 means DefaultMaxIDs, negative means none.
	MaxIDs int
	// StackOnly groups by frames alone, ignoring state, the locked-to-thread
	// flag and created-by. Use it to compare a debug=1 dump (which has no
	// state and no created-by) with a debug=2 one.
	StackOnly bool
}

// Group is a set of goroutines with the same stack (function, file and line
// of every frame, whether frames were elided, and the created-by function)
// and the same state and locked-to-thread flag.
type Group struct {
	// Count is the exact number of goroutines in the group (a debug=1
	// record contributes its count).
	Count int `json:"count"`
	// State is the goroutines' state; with StackOnly it is set only when
	// all members share it.
	State          string `json:"state"`
	LockedToThread bool   `json:"locked_to_thread,omitempty"`
	// Frames of the first goroutine in the group, innermost first.
	Frames       []Frame `json:"frames"`
	FramesElided bool    `json:"frames_elided,omitempty"`
	// CreatedBy of the first goroutine in the group (members share its
	// function; their go statements' lines may differ).
	CreatedBy *Frame `json:"created_by,omitempty"`
	// MinWait and MaxWait over the members (whole minutes; 0 below one).
	MinWait time.Duration `json:"min_wait_ns"`
	MaxWait time.Duration `json:"max_wait_ns"`
	// IDs of the first members, in input order (none for debug=1).
	IDs []int64 `json:"ids,omitempty"`
	// Labels shared by every member; nil when they differ or there are none.
	Labels map[string]string `json:"labels,omitempty"`

	key         string
	labelsMixed bool
	stateMixed  bool
	lockedMixed bool
	createdBy   string // created-by function, for StackOnly uniformity
	createdMix  bool
}

// Key identifies the group's stack and state stably across dumps and
// processes (a hex SHA-256 prefix of the grouping signature). Diff matches
// groups by Key. Groups made with StackOnly have different keys from
// groups made without it.
func (g *Group) Key() string { return g.key }

// Group buckets the dump's goroutines (the method expression
// (*Dump).Group has the signature func(*Dump, GroupOptions) []*Group; Go
// does not allow a function and a type both named Group). Groups are sorted by count
// (descending), then by longest wait (descending), then by innermost
// function name, then by key, so the order is deterministic.
func (d *Dump) Group(opts GroupOptions) []*Group {
	if d == nil {
		return nil
	}
	maxIDs := opts.MaxIDs
	if maxIDs == 0 {
		maxIDs = DefaultMaxIDs
	}
	byKey := make(map[string]*Group)
	var groups []*Group
	var sig []byte
	for _, gr := range d.Goroutines {
		if gr == nil || gr.Count <= 0 {
			continue
		}
		if opts.MinWait > 0 && gr.Wait < opts.MinWait {
			continue
		}
		sig = appendSignature(sig[:0], gr, opts.StackOnly)
		g, ok := byKey[string(sig)]
		if !ok {
			sum := sha256.Sum256(sig)
			g = &Group{
				State:          gr.State,
				LockedToThread: gr.LockedToThread,
				Frames:         gr.Frames,
				FramesElided:   gr.FramesElided,
				CreatedBy:      gr.CreatedBy,
				MinWait:        gr.Wait,
				MaxWait:        gr.Wait,
				Labels:         gr.Labels,
				key:            hex.EncodeToString(sum[:16]),
				createdBy:      createdByFunc(gr),
			}
			byKey[string(sig)] = g
			groups = append(groups, g)
		} else {
			g.MinWait = min(g.MinWait, gr.Wait)
			g.MaxWait = max(g.MaxWait, gr.Wait)
			g.labelsMixed = g.labelsMixed || !maps.Equal(g.Labels, gr.Labels)
			g.stateMixed = g.stateMixed || g.State != gr.State
			g.lockedMixed = g.lockedMixed || g.LockedToThread != gr.LockedToThread
			g.createdMix = g.createdMix || g.createdBy != createdByFunc(gr)
		}
		g.Count += gr.Count
		if gr.ID != 0 && len(g.IDs) < maxIDs {
			g.IDs = append(g.IDs, gr.ID)
		}
	}
	kept := groups[:0]
	for _, g := range groups {
		if g.labelsMixed {
			g.Labels = nil
		}
		if g.stateMixed {
			g.State = ""
		}
		if g.lockedMixed {
			g.LockedToThread = false
		}
		if g.createdMix {
			g.CreatedBy = nil
		}
		if opts.Filter == nil || g.matches(opts.Filter) {
			kept = append(kept, g)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool {
		a, b := kept[i], kept[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.MaxWait != b.MaxWait {
			return a.MaxWait > b.MaxWait
		}
		if fa, fb := a.topFunction(), b.topFunction(); fa != fb {
			return fa < fb
		}
		return a.key < b.key
	})
	return kept
}

func createdByFunc(g *Goroutine) string {
	if g.CreatedBy == nil {
		return ""
	}
	return g.CreatedBy.Function
}

func (g *Group) topFunction() string {
	if len(g.Frames) == 0 {
		return ""
	}
	return g.Frames[0].Function
}

func (g *Group) matches(re *regexp.Regexp) bool {
	for _, f := range g.Frames {
		if re.MatchString(f.Function) || re.MatchString(f.File) {
			return true
		}
	}
	return g.CreatedBy != nil && (re.MatchString(g.CreatedBy.Function) || re.MatchString(g.CreatedBy.File))
}

// appendSignature appends the grouping identity of g to b. Fields are
// separated by bytes that cannot occur in a one-line name.
func appendSignature(b []byte, g *Goroutine, stackOnly bool) []byte {
	if !stackOnly {
		b = append(b, g.State...)
		b = append(b, 0)
		if g.LockedToThread {
			b = append(b, 'L')
		}
		b = append(b, 0)
		b = append(b, createdByFunc(g)...)
		b = append(b, 0)
	}
	if g.FramesElided {
		b = append(b, 'E')
	}
	for _, f := range g.Frames {
		b = append(b, 1)
		b = append(b, f.Function...)
		b = append(b, 2)
		b = append(b, f.File...)
		b = append(b, 2)
		b = strconv.AppendInt(b, int64(f.Line), 10)
	}
	if stackOnly {
		b = append(b, "\x00stack-only"...)
	}
	return b
}
