package render

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// The JSON of `triage goroutines -o json` (and of --save, and what --diff
// reads back) is a contract for scripts:
//
//	{"total": N, "matched": M, "path": "profile", "source": "agent", ...,
//	 "groups": [{"count": 3, "state": "chan receive",
//	             "frames": [{"function": "main.f", "file": "/a.go", "line": 7}, ...]}, ...]}
//
// Frames are innermost first. It is written from these types rather than
// with protojson because protojson renders int64 (count, line) as JSON
// strings, which breaks numeric comparisons in jq and scripts. Live dumps
// and --file dumps both go through GoroutineDocument, so they print the
// same shape.

// GoroutineDoc is the whole document.
type GoroutineDoc struct {
	// Total is the number of goroutines in the dump.
	Total int64 `json:"total"`
	// Matched is the number of goroutines in the groups (after --filter
	// and --min-wait).
	Matched int64 `json:"matched"`
	// Path is how the dump was collected: "profile" or "text"; empty for a file.
	Path string `json:"path,omitempty"`
	// Source is "agent", "gops", "self" or "file".
	Source string `json:"source,omitempty"`
	// Pid is the target process (live dumps).
	Pid int32 `json:"pid,omitempty"`
	// File is the dump's file name (--file), "-" for stdin.
	File string `json:"file,omitempty"`
	// Format is the parsed file's format: debug2, debug1, panic, fatal, ...
	Format string `json:"format,omitempty"`
	// Partial is true when the file looked truncated.
	Partial bool `json:"partial,omitempty"`
	// Time is when the dump was taken (RFC 3339, UTC).
	Time string `json:"time,omitempty"`
	// CollectedSeconds is how long the server took to collect it.
	CollectedSeconds float64 `json:"collected_seconds,omitempty"`
	// Notes say what the server chose and why, or what the file lacks.
	Notes []string `json:"notes,omitempty"`
	// Groups are largest first.
	Groups []GoroutineGroupDoc `json:"groups"`
}

// GoroutineGroupDoc is one group of goroutines with identical stacks.
type GoroutineGroupDoc struct {
	Count          int64             `json:"count"`
	State          string            `json:"state"`
	Frames         []FrameDoc        `json:"frames"`
	CreatedBy      *FrameDoc         `json:"created_by,omitempty"`
	MinWaitSeconds float64           `json:"min_wait_seconds,omitempty"`
	MaxWaitSeconds float64           `json:"max_wait_seconds,omitempty"`
	LockedToThread bool              `json:"locked_to_thread,omitempty"`
	FramesElided   bool              `json:"frames_elided,omitempty"`
	IDs            []int64           `json:"ids,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
}

// FrameDoc is one stack frame.
type FrameDoc struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int64  `json:"line"`
}

// GoroutineView is a grouped dump as the CLI shows it: the server's
// summary (or one made for a file) and the groups, plus what only a file
// has.
type GoroutineView struct {
	Summary *triagev1.GoroutineSummary
	Groups  []*triagev1.GoroutineGroup
	// File, Format and Partial describe a dump read with --file.
	File, Format string
	Partial      bool
}

// Matched is the number of goroutines in the view's groups.
func (v *GoroutineView) Matched() int64 {
	var n int64
	for _, g := range v.Groups {
		n += g.GetCount()
	}
	return n
}

// PathName is a GoroutinePath in lower case: "profile", "text"; "" when unspecified.
func PathName(p triagev1.GoroutinePath) string {
	if p == triagev1.GoroutinePath_GOROUTINE_PATH_UNSPECIFIED {
		return ""
	}
	return lower(p.String(), "GOROUTINE_PATH_")
}

// GoroutineDocument turns a view into the JSON document.
func GoroutineDocument(v *GoroutineView) *GoroutineDoc {
	s := v.Summary
	d := &GoroutineDoc{
		Total: s.GetTotal(), Matched: v.Matched(), Path: PathName(s.GetPath()), Source: s.GetSource(), Pid: s.GetPid(),
		File: v.File, Format: v.Format, Partial: v.Partial, Notes: s.GetNotes(),
		Groups: make([]GoroutineGroupDoc, 0, len(v.Groups)),
	}
	if s.GetTime() != nil {
		d.Time = s.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	if s.GetCollected() != nil {
		d.CollectedSeconds = s.GetCollected().AsDuration().Seconds()
	}
	for _, g := range v.Groups {
		d.Groups = append(d.Groups, GroupDoc(g))
	}
	return d
}

// GroupDoc converts one group.
func GroupDoc(g *triagev1.GoroutineGroup) GoroutineGroupDoc {
	out := GoroutineGroupDoc{
		Count: g.GetCount(), State: g.GetState(), Frames: make([]FrameDoc, 0, len(g.GetFrames())),
		LockedToThread: g.GetLockedToThread(), FramesElided: g.GetFramesElided(), IDs: g.GetIds(), Labels: g.GetLabels(),
	}
	for _, f := range g.GetFrames() {
		out.Frames = append(out.Frames, FrameDoc{Function: f.GetFunction(), File: f.GetFile(), Line: f.GetLine()})
	}
	if c := g.GetCreatedBy(); c != nil {
		out.CreatedBy = &FrameDoc{Function: c.GetFunction(), File: c.GetFile(), Line: c.GetLine()}
	}
	if g.GetMaxWait() != nil {
		out.MinWaitSeconds = g.GetMinWait().AsDuration().Seconds()
		out.MaxWaitSeconds = g.GetMaxWait().AsDuration().Seconds()
	}
	return out
}

// Proto converts a group of a document back to the API's message, for
// reading a saved document.
func (g *GoroutineGroupDoc) Proto() *triagev1.GoroutineGroup {
	out := &triagev1.GoroutineGroup{
		Count: g.Count, State: g.State, LockedToThread: g.LockedToThread, FramesElided: g.FramesElided,
		Ids: g.IDs, Labels: g.Labels,
	}
	for _, f := range g.Frames {
		out.Frames = append(out.Frames, &triagev1.StackFrame{Function: f.Function, File: f.File, Line: f.Line})
	}
	if c := g.CreatedBy; c != nil {
		out.CreatedBy = &triagev1.StackFrame{Function: c.Function, File: c.File, Line: c.Line}
	}
	if g.MaxWaitSeconds > 0 {
		out.MinWait = durationpb.New(seconds(g.MinWaitSeconds))
		out.MaxWait = durationpb.New(seconds(g.MaxWaitSeconds))
	}
	return out
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

// ReadGoroutineDoc decodes a document written by WriteGoroutineDoc; it
// must have a groups array and every group a positive count.
func ReadGoroutineDoc(r io.Reader) (*GoroutineDoc, error) {
	var d GoroutineDoc
	dec := json.NewDecoder(r)
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decode goroutines JSON: %w", err)
	}
	if d.Groups == nil {
		return nil, fmt.Errorf("decode goroutines JSON: no \"groups\" array; expected the output of `triage goroutines -o json` or --save")
	}
	for i, g := range d.Groups {
		if g.Count <= 0 {
			return nil, fmt.Errorf("decode goroutines JSON: group %d has count %d; is this the output of `triage goroutines -o json`?", i+1, g.Count)
		}
	}
	return &d, nil
}

// WriteGoroutineDoc writes the document as indented JSON.
func WriteGoroutineDoc(w io.Writer, d *GoroutineDoc) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode goroutines JSON: %w", err)
	}
	return writeIndented(w, b)
}
