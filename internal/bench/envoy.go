package bench

// The Envoy explain benchmarks (./envoyreport) keep their own README
// section, after the capture one.
const (
	EnvoyMarkerStart = "<!-- bench-envoy:start -->"
	EnvoyMarkerEnd   = "<!-- bench-envoy:end -->"
)

// UpsertEnvoySection puts body between EnvoyMarkerStart and EnvoyMarkerEnd
// in doc, adding the pair after the capture section (or at the end) when
// neither is there (see UpsertSection).
func UpsertEnvoySection(doc, body string) (string, error) {
	return UpsertSection(doc, EnvoyMarkerStart, EnvoyMarkerEnd, body, CaptureMarkerEnd)
}
