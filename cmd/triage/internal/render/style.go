package render

import triagev1 "github.com/triage-sh/triage/proto/triage/v1"

// Color is an ANSI SGR attribute.
type Color string

// The colours views use.
const (
	None   Color = ""
	Bold   Color = "1"
	Dim    Color = "2"
	Red    Color = "1;31"
	Green  Color = "32"
	Yellow Color = "33"
	Cyan   Color = "36"
)

// Style says how to decorate text. The zero Style is plain text, as for
// pipes, files, NO_COLOR and golden tests.
type Style struct {
	// Color enables ANSI colours.
	Color bool
}

// Paint wraps s in c when colour is on.
func (st Style) Paint(c Color, s string) string {
	if !st.Color || c == None || s == "" {
		return s
	}
	return "\x1b[" + string(c) + "m" + s + "\x1b[0m"
}

// SeverityColor is the colour of a finding's severity.
func SeverityColor(s triagev1.Severity) Color {
	switch s {
	case triagev1.Severity_SEVERITY_CRITICAL:
		return Red
	case triagev1.Severity_SEVERITY_WARNING:
		return Yellow
	case triagev1.Severity_SEVERITY_INFO:
		return Cyan
	}
	return None
}

// SeverityLabel is a finding's severity in capitals: CRITICAL, WARNING, INFO.
func SeverityLabel(s triagev1.Severity) string {
	switch s {
	case triagev1.Severity_SEVERITY_CRITICAL:
		return "CRITICAL"
	case triagev1.Severity_SEVERITY_WARNING:
		return "WARNING"
	case triagev1.Severity_SEVERITY_INFO:
		return "INFO"
	}
	return "UNKNOWN"
}
