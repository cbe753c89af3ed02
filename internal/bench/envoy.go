package bench

import (
	"errors"
	"strings"
)

// The Envoy explain benchmarks (./envoyreport) keep their own README
// section, after the capture one.
const (
	EnvoyMarkerStart = "<!-- bench-envoy:start -->"
	EnvoyMarkerEnd   = "<!-- bench-envoy:end -->"
)

var errNoEnvoyMarkers = errors.New("markers " + EnvoyMarkerStart + " and " + EnvoyMarkerEnd + " not found")

// UpsertEnvoySection puts body between EnvoyMarkerStart and EnvoyMarkerEnd
// in doc, adding the pair after the capture section (or at the end) when
// neither is there.
func UpsertEnvoySection(doc, body string) (string, error) {
	if strings.Contains(doc, EnvoyMarkerStart) || strings.Contains(doc, EnvoyMarkerEnd) {
		return replaceSection(doc, EnvoyMarkerStart, EnvoyMarkerEnd, body, errNoEnvoyMarkers)
	}
	section := EnvoyMarkerStart + "\n" + EnvoyMarkerEnd + "\n"
	at := len(doc)
	if i := strings.Index(doc, CaptureMarkerEnd); i >= 0 && strings.Count(doc, CaptureMarkerEnd) == 1 {
		at = i + len(CaptureMarkerEnd)
		if nl := strings.IndexByte(doc[at:], '\n'); nl >= 0 {
			at += nl + 1
		} else {
			at = len(doc)
		}
		section = "\n" + section
	} else if doc != "" && !strings.HasSuffix(doc, "\n") {
		section = "\n" + section
	}
	return replaceSection(doc[:at]+section+doc[at:], EnvoyMarkerStart, EnvoyMarkerEnd, body, errNoEnvoyMarkers)
}

// ReplaceSection puts body between start and end in doc; both markers must
// be there once, in order.
func ReplaceSection(doc, start, end, body string) (string, error) {
	return replaceSection(doc, start, end, body, errors.New("markers "+start+" and "+end+" not found"))
}
