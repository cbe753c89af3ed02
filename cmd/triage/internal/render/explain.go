package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// certWarn is how close to expiry a certificate is shown in yellow.
const certWarn = 14 * 24 * time.Hour

// Explain writes the explanation for a human: findings first, then the
// app as its agent sees it (when the response has one), the sidecar's build, the caller, capabilities, certificates, settings and
// processes. Relative times are measured from the response's time (now
// when it has none).
func Explain(w io.Writer, r *triagev1.ExplainResponse, now time.Time, st Style) error {
	if r.GetTime() != nil {
		now = r.GetTime().AsTime()
	}
	ew := &errWriter{w: w}
	findings(ew, r.GetFindings(), st)
	if r.GetApp() != nil {
		App(ew, r.GetApp(), st)
	}
	sidecarBuild(ew, r, now, st)
	caller(ew, r.GetAuth(), st)
	capabilities(ew, r.GetCapabilities(), st)
	certificates(ew, r.GetCertificates(), now, st)
	settings(ew, r.GetSettings(), st)
	Section(ew, st, false, fmt.Sprintf("PROCESSES (%d)", len(r.GetProcesses())))
	if len(r.GetProcesses()) == 0 {
		Line(ew, "none visible")
	} else {
		processTable(r.GetProcesses()).Write(ew, st)
	}
	return ew.err
}

// findings lists the findings, most severe first as the server orders them.
func findings(w io.Writer, fs []*triagev1.Finding, st Style) {
	Section(w, st, true, fmt.Sprintf("FINDINGS (%d)", len(fs)))
	if len(fs) == 0 {
		Line(w, "%s", st.Paint(Green, "no known failure shapes found"))
		return
	}
	const labelWidth = len("CRITICAL")
	pad := strings.Repeat(" ", labelWidth+1)
	for _, f := range fs {
		label := SeverityLabel(f.GetSeverity())
		head := st.Paint(SeverityColor(f.GetSeverity()), label) + strings.Repeat(" ", labelWidth-len(label)+1) + f.GetCode()
		if f.GetPid() != 0 {
			head += fmt.Sprintf(" (pid %d)", f.GetPid())
		}
		Line(w, "%s", head)
		Line(w, "%s%s", pad, f.GetMessage())
		if len(f.GetEvidence()) > 0 {
			Line(w, "%sevidence: %s", pad, strings.Join(f.GetEvidence(), ", "))
		}
		if f.GetFix() != "" {
			Line(w, "%sfix: %s", pad, f.GetFix())
		}
	}
}

func sidecarBuild(w io.Writer, r *triagev1.ExplainResponse, now time.Time, st Style) {
	Section(w, st, false, "SIDECAR")
	t := NewTable()
	if r.GetHostname() != "" {
		t.Row("host", r.GetHostname())
	}
	t.Row("version", BuildLine(r.GetBuild()))
	if s := r.GetBuild().GetStarted(); s != nil {
		t.Row("started", fmt.Sprintf("%s (up %s)", Timestamp(s.AsTime()), Duration(now.Sub(s.AsTime()).Truncate(time.Second))))
	}
	if r.GetTime() != nil {
		t.Row("time", Timestamp(r.GetTime().AsTime()))
	}
	t.Write(w, st)
}

// BuildLine is a build on one line: "v1.2.3 (rev abc1234, go1.26.0, linux/amd64)".
func BuildLine(b *triagev1.Build) string {
	if b == nil {
		return "unknown"
	}
	var parts []string
	if b.GetRevision() != "" {
		parts = append(parts, "rev "+Truncate(b.GetRevision(), 12))
	}
	for _, p := range []string{b.GetGoVersion(), b.GetPlatform()} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	v := b.GetVersion()
	if v == "" {
		v = "unknown"
	}
	if len(parts) == 0 {
		return v
	}
	return v + " (" + strings.Join(parts, ", ") + ")"
}

func caller(w io.Writer, a *triagev1.Auth, st Style) {
	Section(w, st, false, "CALLER")
	t := NewTable()
	c := a.GetCaller()
	if c == nil {
		t.Row("identity", "unknown")
	} else {
		t.Row("identity", fmt.Sprintf("%s (%s)", c.GetName(), c.GetMethod()))
		if len(c.GetRoles()) == 0 {
			t.Row("roles", C(Yellow, "none: the policy grants this identity nothing"))
		} else {
			t.Row("roles", strings.Join(c.GetRoles(), ", "))
		}
		var perms []string
		for _, p := range c.GetPermissions() {
			perms = append(perms, lower(p.String(), "PERMISSION_"))
		}
		if len(perms) > 0 {
			t.Row("permissions", strings.Join(perms, ", "))
		}
	}
	modes := strings.Join(a.GetModes(), ", ")
	if modes == "" {
		modes = "none"
	}
	t.Row("auth", modes)
	if a.GetPolicyFile() != "" {
		t.Row("policy", fmt.Sprintf("%s (%s)", a.GetPolicyFile(), Plural(int(a.GetBindings()), "binding", "bindings")))
	} else {
		t.Row("policy", C(Yellow, "none: every call but health is denied"))
	}
	t.Write(w, st)
}

func capabilities(w io.Writer, cs []*triagev1.Capability, st Style) {
	Section(w, st, false, "CAPABILITIES")
	if len(cs) == 0 {
		Line(w, "none reported")
		return
	}
	t := NewTable("NAME", "STATE", "REASON", "FIX")
	for _, c := range cs {
		if c.GetEnabled() {
			reason := c.GetReason()
			if reason == "on" {
				reason = ""
			}
			t.Row(c.GetName(), C(Green, "on"), reason, c.GetFix())
		} else {
			t.Row(c.GetName(), C(Yellow, "off"), c.GetReason(), c.GetFix())
		}
	}
	t.Write(w, st)
}

func certificates(w io.Writer, cs []*triagev1.Certificate, now time.Time, st Style) {
	Section(w, st, false, "CERTIFICATES")
	if len(cs) == 0 {
		Line(w, "none (plaintext)")
		return
	}
	t := NewTable("ROLE", "SUBJECT", "EXPIRES", "SANS", "PATH")
	for _, c := range cs {
		exp := Cell{Text: "-"}
		if na := c.GetNotAfter(); na != nil {
			end := na.AsTime()
			exp.Text = Timestamp(end) + " (" + Relative(end, now) + ")"
			switch left := end.Sub(now); {
			case left <= 0:
				exp.Text = Timestamp(end) + " (EXPIRED " + Duration(-left.Truncate(time.Second)) + " ago)"
				exp.Color = Red
			case left < certWarn:
				exp.Color = Yellow
			}
		}
		t.Row(c.GetRole(), c.GetSubject(), exp, strings.Join(c.GetSans(), ", "), c.GetPath())
	}
	t.Write(w, st)
}

func settings(w io.Writer, ss []*triagev1.Setting, st Style) {
	Section(w, st, false, "SETTINGS")
	if len(ss) == 0 {
		Line(w, "none reported")
		return
	}
	t := NewTable("NAME", "VALUE", "SOURCE", "ORIGIN")
	for _, s := range ss {
		src := Cell{Text: lower(s.GetSource().String(), "SOURCE_")}
		if s.GetSource() != triagev1.Source_SOURCE_DEFAULT {
			src.Color = Cyan
		}
		val := s.GetValue()
		if val == "" {
			val = `""`
		}
		t.Row(s.GetName(), val, src, s.GetOrigin())
	}
	t.Write(w, st)
}
