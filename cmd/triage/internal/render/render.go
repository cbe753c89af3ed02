// Package render turns the triage API's responses into text for a human:
// aligned tables, humanised units (KiB/MiB/GiB, 3h12m), sections with
// headings, and colour by severity when the output is a terminal; and into
// stable JSON for scripts.
//
// The building blocks (Table, Section, Bytes, Duration, Percent, Style)
// are meant for every command; Explain, Processes, Process and Version are
// the views of the current ones. Views never read the clock: times are
// shown relative to the response's own time or a "now" the caller passes,
// so the same response always renders the same text.
package render

import (
	"fmt"
	"io"
	"strings"
)

// Section writes a heading: a blank line before every section but the
// first on w (first says which), then the title in bold.
func Section(w io.Writer, st Style, first bool, title string) {
	if !first {
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, st.Paint(Bold, title))
}

// indent is the left margin of a section's content.
const indent = "  "

// Line writes one indented line of a section.
func Line(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, indent+format+"\n", args...)
}

// Unavailable is how every view shows a part the server could not read.
func Unavailable(reason string) string { return "unavailable: " + reason }

// errWriter remembers the first write error, so views can write freely and
// check once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = fmt.Errorf("write output: %w", err)
	}
	return n, err
}

// lower turns an enum name such as "PERMISSION_VIEW" into "view" by
// dropping prefix.
func lower(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}
