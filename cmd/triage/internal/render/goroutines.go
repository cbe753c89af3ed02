package render

import (
	"fmt"
	"io"
	"sort"
	"strings"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// DefaultMaxFrames is how many frames of each group the text view shows
// unless GoroutineOptions asks for all.
const DefaultMaxFrames = 12

// GoroutineOptions shape the text view of goroutine groups.
type GoroutineOptions struct {
	// MaxFrames is how many frames of each stack to show; 0 means
	// DefaultMaxFrames, negative means all.
	MaxFrames int
}

func (o GoroutineOptions) maxFrames() int {
	if o.MaxFrames == 0 {
		return DefaultMaxFrames
	}
	return o.MaxFrames
}

// Goroutines writes a grouped dump for a human: a header line (how many
// goroutines and groups, how and where the dump was taken), the notes,
// then each group, largest first: count, state and wait, the stack
// (function, then file:line indented) and the go statement that created it.
func Goroutines(w io.Writer, v *GoroutineView, o GoroutineOptions, st Style) error {
	ew := &errWriter{w: w}
	s := v.Summary
	head := fmt.Sprintf("%s in %s", Plural(int(s.GetTotal()), "goroutine", "goroutines"), Plural(len(v.Groups), "group", "groups"))
	if m := v.Matched(); m != s.GetTotal() {
		head = fmt.Sprintf("%d of %s match, in %s", m, Plural(int(s.GetTotal()), "goroutine", "goroutines"), Plural(len(v.Groups), "group", "groups"))
	}
	fmt.Fprintln(ew, st.Paint(Bold, head)+dumpOrigin(v))
	for _, n := range s.GetNotes() {
		fmt.Fprintln(ew, st.Paint(Yellow, "note: ")+n)
	}
	if len(v.Groups) == 0 {
		fmt.Fprintln(ew)
		Line(ew, "no goroutines match")
	}
	for _, g := range v.Groups {
		fmt.Fprintln(ew)
		group(ew, g, Plural(int(g.GetCount()), "goroutine", "goroutines"), o, st)
	}
	return ew.err
}

// dumpOrigin says how and where a dump was taken: " · path profile ·
// agent pid 7 · collected in 12ms at 2026-03-01 14:00:00Z", or the file.
func dumpOrigin(v *GoroutineView) string {
	s := v.Summary
	var parts []string
	if v.File != "" {
		f := "file " + v.File
		if v.Format != "" {
			f += " (" + v.Format
			if v.Partial {
				f += ", partial"
			}
			f += ")"
		}
		parts = append(parts, f)
	}
	if p := PathName(s.GetPath()); p != "" {
		parts = append(parts, "path "+p)
	}
	if src := s.GetSource(); src != "" && src != "file" {
		if s.GetPid() != 0 {
			src += fmt.Sprintf(" pid %d", s.GetPid())
		}
		parts = append(parts, src)
	}
	var when []string
	if s.GetCollected() != nil {
		when = append(when, "collected in "+Latency(s.GetCollected().AsDuration()))
	}
	if s.GetTime() != nil {
		when = append(when, "at "+Timestamp(s.GetTime().AsTime()))
	}
	if len(when) > 0 {
		parts = append(parts, strings.Join(when, " "))
	}
	if len(parts) == 0 {
		return ""
	}
	return " · " + strings.Join(parts, " · ")
}

// group writes one group under a heading that starts with lead (its count,
// or its change in a diff).
func group(w io.Writer, g *triagev1.GoroutineGroup, lead string, o GoroutineOptions, st Style) {
	head := []string{st.Paint(Bold, lead)}
	if g.GetState() != "" {
		head = append(head, st.Paint(Cyan, g.GetState()))
	}
	if g.GetMaxWait() != nil {
		lo, hi := g.GetMinWait().AsDuration(), g.GetMaxWait().AsDuration()
		if lo == hi {
			head = append(head, "waiting "+Duration(hi))
		} else {
			head = append(head, fmt.Sprintf("waiting %s to %s", Duration(lo), Duration(hi)))
		}
	}
	if g.GetLockedToThread() {
		head = append(head, "locked to thread")
	}
	if len(g.GetLabels()) > 0 {
		keys := make([]string, 0, len(g.GetLabels()))
		for k := range g.GetLabels() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			keys[i] = k + "=" + g.GetLabels()[k]
		}
		head = append(head, "labels "+strings.Join(keys, " "))
	}
	fmt.Fprintln(w, strings.Join(head, "  "))
	frames := g.GetFrames()
	shown := frames
	if n := o.maxFrames(); n >= 0 && len(frames) > n {
		shown = frames[:n]
	}
	for _, f := range shown {
		frame(w, f)
	}
	if more := len(frames) - len(shown); more > 0 {
		Line(w, "%s", st.Paint(Dim, fmt.Sprintf("… %s (--full shows them)", Plural(more, "more frame", "more frames"))))
	}
	if g.GetFramesElided() {
		Line(w, "%s", st.Paint(Dim, "… frames elided by the runtime"))
	}
	if c := g.GetCreatedBy(); c != nil {
		Line(w, "%s", st.Paint(Dim, "created by ")+c.GetFunction())
		if c.GetFile() != "" {
			Line(w, "    %s", fileLine(c))
		}
	}
}

func frame(w io.Writer, f *triagev1.StackFrame) {
	Line(w, "%s", f.GetFunction())
	if f.GetFile() != "" {
		Line(w, "    %s", fileLine(f))
	}
}

func fileLine(f *triagev1.StackFrame) string {
	if f.GetLine() == 0 {
		return f.GetFile()
	}
	return fmt.Sprintf("%s:%d", f.GetFile(), f.GetLine())
}
