package fleet

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// PodGoroutines is one pod's grouped goroutines, as client.Goroutines
// returns them.
type PodGoroutines struct {
	// Pod is "namespace/name"; names must be unique (a repeated name is
	// folded into the first).
	Pod     string
	Summary *triagev1.GoroutineSummary
	Groups  []*triagev1.GoroutineGroup
}

// GoroutineOptions tune MergeGoroutines.
type GoroutineOptions struct {
	// ExactLines keys groups by line numbers too, as the single-pod
	// grouping does. By default lines are left out of the key: pods in
	// the middle of a rollout run different builds, and the same wait at
	// the same function moves by a few lines from one build to the next,
	// which would split every group into two "only on some pods" halves.
	// The cost is that two waits in one function (two selects, say) are
	// counted together; MergedGroup.LineVariants tells when lines differed.
	ExactLines bool
}

// MergedGoroutines is the goroutines of many pods merged by group.
type MergedGoroutines struct {
	// Pods is the number of pods merged (M).
	Pods int `json:"pods"`
	// Total is the number of goroutines over all pods.
	Total int64 `json:"total"`
	// ExactLines says whether line numbers were part of the group key.
	ExactLines bool `json:"exact_lines"`
	// StackOnly is true when states were left out of the key because some
	// pods were dumped on the profile path (no states) and some on the
	// text path.
	StackOnly bool `json:"stack_only,omitempty"`
	// Notes say how the merge was done, when that matters.
	Notes []string `json:"notes,omitempty"`
	// Totals are the pods' own totals, by pod name.
	Totals []PodTotal `json:"totals"`
	// Groups are the merged groups, largest total first, then by key.
	Groups []MergedGroup `json:"groups"`
	// Outliers are the odd pods out: pod totals first, then by group
	// order, then by pod.
	Outliers []Outlier `json:"outliers"`
}

// PodTotal is one pod's dump summary.
type PodTotal struct {
	Pod string `json:"pod"`
	// Total is the number of goroutines in the pod.
	Total int64 `json:"total"`
	// Matched is the number in the groups sent (less than Total with a filter).
	Matched int64 `json:"matched"`
	// Groups is the number of groups the pod sent.
	Groups int `json:"groups"`
	// Path is "profile" or "text"; Source is "agent", "gops" or "self".
	Path   string `json:"path,omitempty"`
	Source string `json:"source,omitempty"`
	// Outlier is "high" or "low" when the total is an outlier.
	Outlier string `json:"outlier,omitempty"`
}

// MergedGroup is one group of goroutines across pods.
type MergedGroup struct {
	// Key identifies the group across pods (hex).
	Key string `json:"key"`
	// Total is the number of goroutines in the group over all pods.
	Total int64 `json:"total"`
	// Pods is the number of pods that have it (N of OfPods).
	Pods   int `json:"pods"`
	OfPods int `json:"of_pods"`
	// Min, Median and Max are per-pod counts over all OfPods pods (a pod
	// without the group counts 0).
	Min    int64 `json:"min"`
	Median int64 `json:"median"`
	Max    int64 `json:"max"`
	// MinWait and MaxWait bound the wait over the pods (text path only).
	MinWait time.Duration `json:"min_wait_ns,omitempty"`
	MaxWait time.Duration `json:"max_wait_ns,omitempty"`
	// State, LockedToThread, Frames, FramesElided and CreatedBy are those
	// of the largest pod's group.
	State          string  `json:"state"`
	LockedToThread bool    `json:"locked_to_thread,omitempty"`
	Frames         []Frame `json:"frames"`
	FramesElided   bool    `json:"frames_elided,omitempty"`
	CreatedBy      *Frame  `json:"created_by,omitempty"`
	// LineVariants is the number of distinct line-number variants of the
	// stack seen (more than 1: the pods run different builds, or one
	// function waits at several lines).
	LineVariants int `json:"line_variants,omitempty"`
	// Counts are the pods that have the group, largest count first, then
	// by pod.
	Counts []PodCount `json:"counts"`
}

// Partial is true when only some pods have the group.
func (g *MergedGroup) Partial() bool { return g.Pods < g.OfPods }

// Where is the group's innermost frame outside the runtime and the
// synchronisation packages (where the app is waiting), or the innermost.
func (g *MergedGroup) Where() string {
	for _, f := range g.Frames {
		if !isPlumbing(f.Function) {
			return f.Function
		}
	}
	if len(g.Frames) > 0 {
		return g.Frames[0].Function
	}
	return ""
}

func isPlumbing(fn string) bool {
	for _, p := range []string{"runtime.", "internal/", "sync.", "syscall.", "time.Sleep"} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// PodCount is one pod's count of a group.
type PodCount struct {
	Pod   string `json:"pod"`
	Count int64  `json:"count"`
	// Outlier is "high", "low" or "only" when this count is odd.
	Outlier string `json:"outlier,omitempty"`
}

// Frame is one stack frame.
type Frame struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int64  `json:"line"`
}

// Outlier is one odd pod out.
type Outlier struct {
	Pod string `json:"pod"`
	// Group is the merged group's key; empty when the pod's total is odd.
	Group string `json:"group,omitempty"`
	// Where is the group's Where, for humans.
	Where string `json:"where,omitempty"`
	// Count is the pod's value, Typical the median of the other pods'.
	Count   int64 `json:"count"`
	Typical int64 `json:"typical"`
	// Why says what is odd.
	Why string `json:"why"`
}

// Reasons an Outlier gives.
const (
	WhyTotalHigh = "many more goroutines than the other pods"
	WhyTotalLow  = "far fewer goroutines than the other pods"
	WhyHigh      = "far more in this group than the other pods"
	WhyLow       = "far fewer in this group than the other pods"
	WhyMissing   = "missing here"
)

// WhyOnly is the reason for a group only a minority of pods have.
func WhyOnly(n, m int) string { return fmt.Sprintf("only on %d of %d pods", n, m) }

// MergeGoroutines merges the pods' goroutine groups with the default
// options. See MergeGoroutinesWith.
func MergeGoroutines(pods []PodGoroutines) *MergedGoroutines {
	return MergeGoroutinesWith(pods, GoroutineOptions{})
}

// MergeGoroutinesWith merges the pods' goroutine groups by the identity
// the single-pod grouping uses (state, locked-to-thread, the creating
// function, elided frames, and every frame's function and file; lines
// only with ExactLines). Goroutine ids, waits and labels belong to single
// goroutines and never split a group. Pods whose call failed are left out
// by the caller; a nil or empty input gives an empty result.
func MergeGoroutinesWith(pods []PodGoroutines, o GoroutineOptions) *MergedGoroutines {
	pods = uniquePods(pods)
	m := &MergedGoroutines{Pods: len(pods), ExactLines: o.ExactLines, Totals: []PodTotal{}, Groups: []MergedGroup{}, Outliers: []Outlier{}}
	m.StackOnly = mixedPaths(pods)
	if m.StackOnly {
		m.Notes = append(m.Notes, "some pods were dumped on the profile path (no states) and some on the text path: groups are matched by stack alone")
	}

	type acc struct {
		g        *MergedGroup
		perPod   map[string]int64
		biggest  map[string]*triagev1.GoroutineGroup // each pod's largest source group
		variants map[string]bool
		hasWait  bool
	}
	byKey := map[string]*acc{}
	var order []*acc
	var sig, variant []byte
	for _, p := range pods {
		t := PodTotal{Pod: p.Pod, Groups: len(p.Groups), Path: pathName(p.Summary.GetPath()), Source: p.Summary.GetSource()}
		for _, src := range p.Groups {
			if src == nil || src.GetCount() <= 0 {
				continue
			}
			t.Matched += src.GetCount()
			sig = appendKey(sig[:0], src, o.ExactLines, m.StackOnly)
			a, ok := byKey[string(sig)]
			if !ok {
				sum := sha256.Sum256(sig)
				a = &acc{g: &MergedGroup{Key: hex.EncodeToString(sum[:16]), OfPods: len(pods)}, perPod: map[string]int64{}, biggest: map[string]*triagev1.GoroutineGroup{}, variants: map[string]bool{}}
				byKey[string(sig)] = a
				order = append(order, a)
			}
			a.perPod[p.Pod] += src.GetCount()
			a.g.Total += src.GetCount()
			if !o.ExactLines {
				variant = appendKey(variant[:0], src, true, m.StackOnly)
				if !a.variants[string(variant)] {
					a.variants[string(variant)] = true
				}
			}
			if mw := src.GetMaxWait(); mw != nil {
				lo, hi := src.GetMinWait().AsDuration(), mw.AsDuration()
				if !a.hasWait {
					a.g.MinWait, a.g.MaxWait, a.hasWait = lo, hi, true
				} else {
					a.g.MinWait, a.g.MaxWait = min(a.g.MinWait, lo), max(a.g.MaxWait, hi)
				}
			}
			if b := a.biggest[p.Pod]; b == nil || src.GetCount() > b.GetCount() {
				a.biggest[p.Pod] = src
			}
		}
		t.Total = p.Summary.GetTotal()
		if t.Total < t.Matched {
			t.Total = t.Matched
		}
		m.Total += t.Total
		m.Totals = append(m.Totals, t)
	}

	// Totals: outliers against the other pods.
	totals := make([]int64, len(m.Totals))
	for i, t := range m.Totals {
		totals[i] = t.Total
	}
	st := sortedCopy(totals)
	var outs []Outlier
	for i := range m.Totals {
		t := &m.Totals[i]
		o := without(st, t.Total)
		typ := o.typical()
		switch t.Outlier = deviation(t.Total, o); t.Outlier {
		case "high":
			outs = append(outs, Outlier{Pod: t.Pod, Count: t.Total, Typical: typ, Why: WhyTotalHigh})
		case "low":
			outs = append(outs, Outlier{Pod: t.Pod, Count: t.Total, Typical: typ, Why: WhyTotalLow})
		}
	}

	slices.SortFunc(order, func(x, y *acc) int {
		return cmp.Or(cmp.Compare(y.g.Total, x.g.Total), cmp.Compare(x.g.Key, y.g.Key))
	})
	for _, a := range order {
		g := a.g
		g.Pods = len(a.perPod)
		if len(a.variants) > 1 {
			g.LineVariants = len(a.variants)
		}
		// The shape shown is the largest pod's largest source group (the
		// first pod by name on a tie).
		rep := ""
		counts := make([]int64, len(pods))
		for i, p := range pods {
			c, ok := a.perPod[p.Pod]
			counts[i] = c
			if ok {
				g.Counts = append(g.Counts, PodCount{Pod: p.Pod, Count: c})
				if rep == "" || c > a.perPod[rep] {
					rep = p.Pod
				}
			}
		}
		setShape(g, a.biggest[rep])
		sc := sortedCopy(counts)
		g.Min, g.Median, g.Max = sc[0], median(sc), sc[len(sc)-1]
		slices.SortFunc(g.Counts, func(x, y PodCount) int {
			return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Pod, y.Pod))
		})
		outs = append(outs, groupOutliers(g, pods, a.perPod, sc)...)
		m.Groups = append(m.Groups, *g)
	}
	m.Outliers = append(m.Outliers, outs...)
	return m
}

// groupOutliers flags the odd pods of one group and marks them in g.Counts;
// sorted is every pod's count of the group (0 without it), sorted.
func groupOutliers(g *MergedGroup, pods []PodGoroutines, perPod map[string]int64, sorted []int64) []Outlier {
	n, total := g.Pods, g.OfPods
	if total < 2 {
		return nil
	}
	var out []Outlier
	mark := map[string]string{}
	for _, p := range pods {
		c, has := perPod[p.Pod]
		o := without(sorted, c)
		typ := o.typical()
		var why []string
		switch {
		case has && n*2 <= total:
			why = append(why, WhyOnly(n, total))
			mark[p.Pod] = "only"
		case !has && n*2 > total && typ >= 2:
			// A pod lacks a group most pods have with more than a stray goroutine.
			why = append(why, fmt.Sprintf("%s; on %d of %d pods", WhyMissing, n, total))
		}
		switch deviation(c, o) {
		case "high":
			why = append(why, WhyHigh)
			mark[p.Pod] = "high"
		case "low":
			if has { // a missing pod already says so
				why = append(why, WhyLow)
				mark[p.Pod] = "low"
			}
		}
		if len(why) > 0 {
			out = append(out, Outlier{Pod: p.Pod, Group: g.Key, Where: g.Where(), Count: c, Typical: typ, Why: strings.Join(why, "; ")})
		}
	}
	for i := range g.Counts {
		g.Counts[i].Outlier = mark[g.Counts[i].Pod]
	}
	return out
}

// uniquePods sorts pods by name and folds repeated names into one.
func uniquePods(in []PodGoroutines) []PodGoroutines {
	sorted := slices.Clone(in)
	slices.SortStableFunc(sorted, func(a, b PodGoroutines) int { return cmp.Compare(a.Pod, b.Pod) })
	var out []PodGoroutines
	for _, p := range sorted {
		if n := len(out); n > 0 && out[n-1].Pod == p.Pod {
			out[n-1].Groups = append(slices.Clip(out[n-1].Groups), p.Groups...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// mixedPaths says whether some pods have states and some cannot.
func mixedPaths(pods []PodGoroutines) bool {
	var stateless, stateful bool
	for _, p := range pods {
		switch p.Summary.GetPath() {
		case triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE:
			stateless = true
		case triagev1.GoroutinePath_GOROUTINE_PATH_TEXT:
			stateful = true
		default:
			for _, g := range p.Groups {
				if g.GetState() != "" {
					stateful = true
				} else {
					stateless = true
				}
			}
		}
	}
	return stateless && stateful
}

func pathName(p triagev1.GoroutinePath) string {
	if p == triagev1.GoroutinePath_GOROUTINE_PATH_UNSPECIFIED {
		return ""
	}
	return lowerEnum(p.String(), "GOROUTINE_PATH_")
}

// appendKey appends the merge identity of g to b, in the manner of
// internal/goroutines' signature: fields separated by bytes that cannot
// occur in a one-line name.
func appendKey(b []byte, g *triagev1.GoroutineGroup, lines, stackOnly bool) []byte {
	if !stackOnly {
		b = append(b, g.GetState()...)
		b = append(b, 0)
		if g.GetLockedToThread() {
			b = append(b, 'L')
		}
		b = append(b, 0)
		b = append(b, g.GetCreatedBy().GetFunction()...)
		b = append(b, 0)
	}
	if g.GetFramesElided() {
		b = append(b, 'E')
	}
	for _, f := range g.GetFrames() {
		b = append(b, 1)
		b = append(b, f.GetFunction()...)
		b = append(b, 2)
		b = append(b, f.GetFile()...)
		if lines {
			b = append(b, 2)
			b = strconv.AppendInt(b, f.GetLine(), 10)
		}
	}
	return b
}

func setShape(g *MergedGroup, src *triagev1.GoroutineGroup) {
	g.State, g.LockedToThread, g.FramesElided = src.GetState(), src.GetLockedToThread(), src.GetFramesElided()
	g.Frames = make([]Frame, 0, len(src.GetFrames()))
	for _, f := range src.GetFrames() {
		g.Frames = append(g.Frames, Frame{Function: f.GetFunction(), File: f.GetFile(), Line: f.GetLine()})
	}
	g.CreatedBy = nil
	if c := src.GetCreatedBy(); c != nil {
		g.CreatedBy = &Frame{Function: c.GetFunction(), File: c.GetFile(), Line: c.GetLine()}
	}
}
