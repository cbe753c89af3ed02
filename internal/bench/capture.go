package bench

import (
	"errors"
	"strings"
)

// The packet-capture benchmarks (./capturereport) keep their own README
// section, after the runtime one.
const (
	CaptureMarkerStart = "<!-- bench-capture:start -->"
	CaptureMarkerEnd   = "<!-- bench-capture:end -->"
)

var errNoCaptureMarkers = errors.New("markers " + CaptureMarkerStart + " and " + CaptureMarkerEnd + " not found")

// UpsertCaptureSection puts body between CaptureMarkerStart and
// CaptureMarkerEnd in doc. When neither marker is there it adds the pair,
// with body, on the line after RuntimeMarkerEnd (the runtime section), or
// after MarkerEnd (the main bench table) when that is missing, or at the end
// of doc. Markers out of order, repeated, or only one of the pair are an
// error, so a hand-edited README is never mangled.
func UpsertCaptureSection(doc, body string) (string, error) {
	hasStart, hasEnd := strings.Contains(doc, CaptureMarkerStart), strings.Contains(doc, CaptureMarkerEnd)
	if hasStart || hasEnd {
		return replaceSection(doc, CaptureMarkerStart, CaptureMarkerEnd, body, errNoCaptureMarkers)
	}
	section := CaptureMarkerStart + "\n" + CaptureMarkerEnd + "\n"
	at := len(doc)
	for _, after := range []string{RuntimeMarkerEnd, MarkerEnd} {
		i := strings.Index(doc, after)
		if i < 0 || strings.Count(doc, after) != 1 {
			continue
		}
		at = i + len(after)
		if nl := strings.IndexByte(doc[at:], '\n'); nl >= 0 {
			at += nl + 1
		} else {
			at = len(doc)
		}
		section = "\n" + section
		break
	}
	if at == len(doc) && doc != "" && !strings.HasSuffix(doc, "\n") {
		section = "\n" + section
	}
	return replaceSection(doc[:at]+section+doc[at:], CaptureMarkerStart, CaptureMarkerEnd, body, errNoCaptureMarkers)
}
