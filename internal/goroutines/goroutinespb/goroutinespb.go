// Package goroutinespb converts grouped goroutine dumps to the API's
// messages. The sidecar and the CLI's --file both use it, so a dump from a
// live target and one from a file print the same JSON.
package goroutinespb

import (
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/internal/goroutines"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Group converts a group.
func Group(g *goroutines.Group) *triagev1.GoroutineGroup {
	out := &triagev1.GoroutineGroup{
		Count: int64(g.Count), State: g.State, LockedToThread: g.LockedToThread, Ids: g.IDs,
		Labels: g.Labels, FramesElided: g.FramesElided,
	}
	if g.MaxWait > 0 {
		out.MinWait, out.MaxWait = durationpb.New(g.MinWait), durationpb.New(g.MaxWait)
	}
	for _, f := range g.Frames {
		out.Frames = append(out.Frames, Frame(f))
	}
	if g.CreatedBy != nil {
		out.CreatedBy = Frame(*g.CreatedBy)
	}
	return out
}

// Frame converts a frame.
func Frame(f goroutines.Frame) *triagev1.StackFrame {
	return &triagev1.StackFrame{Function: f.Function, File: f.File, Line: int64(f.Line)}
}

// Groups converts groups.
func Groups(gs []*goroutines.Group) []*triagev1.GoroutineGroup {
	out := make([]*triagev1.GoroutineGroup, len(gs))
	for i, g := range gs {
		out[i] = Group(g)
	}
	return out
}
