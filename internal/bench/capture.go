package bench

// The packet-capture benchmarks (./capturereport) keep their own README
// section, after the runtime one.
const (
	CaptureMarkerStart = "<!-- bench-capture:start -->"
	CaptureMarkerEnd   = "<!-- bench-capture:end -->"
)

// UpsertCaptureSection puts body between CaptureMarkerStart and
// CaptureMarkerEnd in doc, adding the pair after the runtime section, else
// after the main bench table, else at the end (see UpsertSection).
func UpsertCaptureSection(doc, body string) (string, error) {
	return UpsertSection(doc, CaptureMarkerStart, CaptureMarkerEnd, body, RuntimeMarkerEnd, MarkerEnd)
}
