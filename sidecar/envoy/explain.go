package envoy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/triage-sh/triage/internal/envoyadmin"
	"github.com/triage-sh/triage/internal/envoyexplain"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// findingsTTL is how long explain reuses what it read of Envoy: callers
// that arrive together share one read of a config dump that may be
// megabytes.
const findingsTTL = time.Second

// Finding codes of the contributor itself (envoyexplain's are "envoy-*" too).
const (
	codeUnreachable = "envoy-unreachable"
	codeUnsupported = "envoy-dump-unsupported"
	codeTooLarge    = "envoy-dump-too-large"
	codeAdminError  = "envoy-admin-error"
)

// findingsCache holds the last Envoy findings.
type findingsCache struct {
	mu       sync.Mutex
	at       time.Time
	valid    bool
	findings []*triagev1.Finding
}

// explain adds Envoy's findings to `triage explain`. It never fails the
// explanation: an Envoy that does not answer within --envoy-explain-timeout
// is itself a finding.
func (s *server) explain(ctx context.Context, resp *triagev1.ExplainResponse) {
	for _, f := range s.findings(ctx) {
		resp.Findings = append(resp.Findings, proto.Clone(f).(*triagev1.Finding))
	}
}

// findings reads Envoy at most once per findingsTTL; concurrent callers
// wait for one read.
func (s *server) findings(ctx context.Context) []*triagev1.Finding {
	c := &s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid && s.now().Sub(c.at) < findingsTTL {
		return c.findings
	}
	// Not the caller's cancellation: the result is shared with other callers.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.ExplainTimeout)
	defer cancel()
	in, _, err := s.gather(ctx, parts{eds: true, clusters: true, certs: true, stats: true})
	if err != nil {
		c.findings = []*triagev1.Finding{s.errorFinding(err)}
	} else {
		c.findings = findingsProto(envoyexplain.Explain(in).Findings)
	}
	c.at, c.valid = s.now(), true
	return c.findings
}

// errorFinding turns a failed read of Envoy into a finding.
func (s *server) errorFinding(err error) *triagev1.Finding {
	url := s.c.URL()
	f := &triagev1.Finding{Severity: triagev1.Severity_SEVERITY_WARNING, Evidence: []string{err.Error()}}
	switch envoyadmin.KindOf(err) {
	case envoyadmin.KindUnavailable, envoyadmin.KindStatus, envoyadmin.KindDecode:
		f.Code = codeUnreachable
		f.Message = "the Envoy admin at " + url + " does not answer as Envoy's admin does"
		f.Fix = "check that Envoy runs in the pod and that --envoy-admin names its admin port (Istio: http://127.0.0.1:15000); triage envoy explain shows the error"
	case envoyadmin.KindTimeout:
		f.Code = codeUnreachable
		f.Message = fmt.Sprintf("the Envoy admin at %s did not answer within %s", url, s.o.ExplainTimeout)
		f.Fix = "Envoy may be overloaded or stuck: triage envoy server-info; a large config dump may need a longer --envoy-explain-timeout"
	case envoyadmin.KindUnsupported:
		f.Severity, f.Code = triagev1.Severity_SEVERITY_INFO, codeUnsupported
		f.Message = "the Envoy at " + url + " is too old to explain: its config dump uses the pre-v3 admin API"
		f.Fix = "upgrade the proxy (Envoy 1.13 or newer, Istio 1.5 or newer)"
	case envoyadmin.KindTooLarge:
		f.Code = codeTooLarge
		f.Message = "the Envoy config dump at " + url + " is larger than the sidecar reads"
		f.Fix = "raise --envoy-max-response-bytes"
	default:
		f.Code = codeAdminError
		f.Message = "the Envoy admin at " + url + " could not be read"
		f.Fix = "triage envoy explain shows the error"
	}
	return f
}
