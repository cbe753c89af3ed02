package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// inlineJSON is the longest registered value printed on its name's line;
// longer ones are indented below it.
const inlineJSON = 60

// App writes explain's APP section: the app as its agent (or gops) sees
// it, and the config and state it registered, as indented JSON.
func App(w io.Writer, a *triagev1.App, st Style) {
	Section(w, st, false, "APP")
	t := NewTable()
	src := a.GetSource()
	if src == "" {
		src = "unknown"
	}
	if a.GetAddress() != "" {
		src += " at " + a.GetAddress()
	}
	t.Row("source", src)
	if a.GetReachable() {
		t.Row("reachable", C(Green, "yes"))
	} else {
		reason := "no"
		if a.GetReason() != "" {
			reason += ": " + a.GetReason()
		}
		t.Row("reachable", C(Red, reason))
	}
	if a.GetPid() != 0 {
		t.Row("pid", fmt.Sprint(a.GetPid()))
	}
	if a.GetGoVersion() != "" {
		t.Row("go", a.GetGoVersion())
	}
	if b := a.GetBuild(); b != nil {
		t.Row("build", buildSummary(b))
	}
	if a.GetUptime() != nil {
		t.Row("uptime", Duration(a.GetUptime().AsDuration().Truncate(time.Second)))
	}
	if a.GetAgentVersion() != "" {
		t.Row("agent", a.GetAgentVersion())
	}
	t.Write(w, st)
	if len(a.GetConfig())+len(a.GetState()) == 0 {
		if a.GetReachable() && a.GetSource() == "agent" {
			Line(w, "%s", st.Paint(Dim, "no config or state registered (agent.RegisterConfig, agent.RegisterState)"))
		}
		return
	}
	fmt.Fprintln(w)
	width := 0
	for _, v := range a.GetConfig() {
		width = max(width, len("config ")+utf8.RuneCountInString(v.GetName()))
	}
	for _, v := range a.GetState() {
		width = max(width, len("state ")+utf8.RuneCountInString(v.GetName()))
	}
	for _, v := range a.GetConfig() {
		registered(w, "config", v, width, st)
	}
	for _, v := range a.GetState() {
		registered(w, "state", v, width, st)
	}
}

// registered writes one registered value: short JSON on the name's line
// (the name padded to width), longer JSON indented below it, an error in
// yellow.
func registered(w io.Writer, kind string, v *triagev1.RegisteredValue, width int, st Style) {
	name := kind + " " + v.GetName()
	padded := name + strings.Repeat(" ", max(0, width-utf8.RuneCountInString(name)))
	if v.GetError() != "" {
		Line(w, "%s  %s", padded, st.Paint(Yellow, "error: "+oneLine(v.GetError())))
		return
	}
	raw := []byte(v.GetJson())
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		Line(w, "%s  %s", padded, oneLine(v.GetJson()))
		return
	}
	if compact.Len() <= inlineJSON {
		Line(w, "%s  %s", padded, compact.String())
		return
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, compact.Bytes(), "", "  ") // valid: Compact accepted it
	Line(w, "%s", name)
	for _, l := range strings.Split(pretty.String(), "\n") {
		Line(w, "  %s", l)
	}
}

// oneLine collapses runs of white space, newlines included, to one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
