package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"

	"github.com/triage-sh/triage/cmd/triage/internal/render"
	"github.com/triage-sh/triage/internal/goroutines"
	"github.com/triage-sh/triage/internal/goroutines/goroutinespb"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// dumpSide is one of the two dumps --diff compares.
type dumpSide struct {
	name   string
	total  int64
	groups []*triagev1.GoroutineGroup
}

// loadDiffBase reads the "before" of --diff: a document saved with --save
// or -o json, or a text dump (anything not starting with '{'), grouped
// with opts as the "after" is.
func loadDiffBase(path string, opts goroutines.GroupOptions) (*dumpSide, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read --diff file: %w", err)
	}
	if len(b) > maxDumpFile {
		return nil, fmt.Errorf("read --diff file %s: larger than %s", path, render.Bytes(maxDumpFile))
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		doc, err := render.ReadGoroutineDoc(bytes.NewReader(t))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		s := &dumpSide{name: path, total: doc.Total}
		for i := range doc.Groups {
			s.groups = append(s.groups, doc.Groups[i].Proto())
		}
		return s, nil
	}
	d, err := goroutines.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: not a saved goroutines JSON and %w", path, err)
	}
	return &dumpSide{name: path, total: int64(d.Total), groups: goroutinespb.Groups(d.Group(opts))}, nil
}

// diffDumps matches the groups of two dumps with goroutines.Diff. When
// exactly one side has wait states (a profile-path or debug=1 dump against
// a text one), groups are matched by stack alone, else every group would
// look new. filter applies to both sides, so an unfiltered saved dump can
// be compared with a filtered one.
func diffDumps(before, after *dumpSide, filter *regexp.Regexp) *render.GoroutineDiffView {
	v := &render.GoroutineDiffView{Before: before.name, After: after.name, BeforeTotal: before.total, AfterTotal: after.total}
	opts := goroutines.GroupOptions{Filter: filter, MaxIDs: -1}
	if hasStates(before.groups) != hasStates(after.groups) && len(before.groups) > 0 && len(after.groups) > 0 {
		opts.StackOnly = true
		v.Notes = append(v.Notes, "one dump has no wait states (profile path or debug=1): groups are matched by stack alone")
	}
	for _, d := range goroutines.Diff(rebuild(before.groups, opts), rebuild(after.groups, opts)) {
		v.Deltas = append(v.Deltas, render.GoroutineDelta{
			Group: goroutinespb.Group(d.Group), Before: int64(d.Before), After: int64(d.After), Change: int64(d.Change),
		})
	}
	return v
}

func hasStates(gs []*triagev1.GoroutineGroup) bool {
	for _, g := range gs {
		if g.GetState() != "" {
			return true
		}
	}
	return false
}

// rebuild turns the API's groups back into goroutines.Groups whose Keys
// are those the same goroutines would get from Parse and Group: each group
// becomes goroutines with its stack, state and creator (two of them when
// its waits differ, so the rebuilt group keeps its wait range), regrouped.
// Goroutine ids are not kept.
func rebuild(gs []*triagev1.GoroutineGroup, opts goroutines.GroupOptions) []*goroutines.Group {
	d := &goroutines.Dump{}
	for _, g := range gs {
		if g.GetCount() <= 0 {
			continue
		}
		gr := goroutines.Goroutine{
			State: g.GetState(), LockedToThread: g.GetLockedToThread(), FramesElided: g.GetFramesElided(),
			Labels: g.GetLabels(), Count: int(g.GetCount()), Wait: g.GetMaxWait().AsDuration(),
		}
		for _, f := range g.GetFrames() {
			gr.Frames = append(gr.Frames, goroutines.Frame{Function: f.GetFunction(), File: f.GetFile(), Line: int(f.GetLine())})
		}
		if c := g.GetCreatedBy(); c != nil {
			gr.CreatedBy = &goroutines.Frame{Function: c.GetFunction(), File: c.GetFile(), Line: int(c.GetLine())}
		}
		if lo := g.GetMinWait().AsDuration(); gr.Count > 1 && lo != gr.Wait {
			first := gr
			first.Count, first.Wait = 1, lo
			gr.Count--
			d.Goroutines = append(d.Goroutines, &first)
		}
		d.Goroutines = append(d.Goroutines, &gr)
		d.Total += int(g.GetCount())
	}
	return d.Group(opts)
}
