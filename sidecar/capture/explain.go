package capture

import (
	"context"
	"os"
	"strconv"
	"strings"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// capNetRaw is CAP_NET_RAW's bit.
const capNetRaw = 13

// available says whether this process may open packet sockets: CAP_NET_RAW
// in its permitted set (a process may raise a permitted capability into its
// effective set for the socket alone).
func (s *server) available() (bool, string) {
	root := s.d.ProcRoot
	if root == "" {
		root = "/proc"
	}
	data, err := os.ReadFile(root + "/self/status")
	if err != nil {
		return false, "cannot read " + root + "/self/status: " + err.Error()
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapPrm:"); ok {
			bits, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, "cannot parse CapPrm: " + err.Error()
			}
			if bits&(1<<capNetRaw) == 0 {
				return false, noCapMessage
			}
			return true, ""
		}
	}
	return false, "no CapPrm line in " + root + "/self/status"
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
