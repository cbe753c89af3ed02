package capture

import (
	"context"

	"github.com/triage-sh/triage/internal/capture"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// available says whether this process may open packet sockets: CAP_NET_RAW
// in its permitted set (a process may raise a permitted capability into its
// effective set for the socket alone). Explain asks on every call; capget
// costs no allocation, where reading /proc/self/status was half the bytes
// an Explain allocated.
func (s *server) available() (bool, string) {
	ok, err := capture.NetRawPermitted()
	switch {
	case err != nil:
		return false, "cannot read the sidecar's capabilities (capget): " + err.Error()
	case !ok:
		return false, noCapMessage
	}
	return true, ""
}

// explain adds a finding when capture cannot work here.
func (s *server) explain(_ context.Context, resp *triagev1.ExplainResponse) {
	ok, reason := s.available()
	if ok {
		return
	}
	resp.Findings = append(resp.Findings, &triagev1.Finding{
		Code:     "capture-unavailable",
		Severity: triagev1.Severity_SEVERITY_INFO,
		Message:  "packet capture is off: the sidecar cannot open packet sockets",
		Evidence: []string{reason},
		Fix:      "add securityContext.capabilities.add: [\"NET_RAW\"] to the triage-sidecar container, or annotate the pod triage.dev/capture: \"true\" when the injector runs",
	})
}
