// Package explain is the ExplainService capability: "what does this pod
// believe?" It gathers the sidecar's build, effective settings with sources,
// the caller's identity and roles, capability statuses, certificates and the
// visible processes, and runs the findings checks over them.
package explain

import (
	"context"
	"os"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
	"github.com/triage-sh/triage/sidecar/process"
)

// maxInspected bounds how many processes explain inspects in depth; a pod
// has a handful, a host may have thousands.
const maxInspected = 32

// Capability returns the explain row of the capability table.
func Capability() capability.Capability {
	return capability.Capability{Name: "explain", Register: Register}
}

// Register registers ExplainService on s.
func Register(s grpc.ServiceRegistrar, d capability.Deps) (func(), error) {
	triagev1.RegisterExplainServiceServer(s, &server{
		info:    d.Server,
		procs:   process.NewInspector(d.ProcRoot, d.CgroupRoot),
		checks:  DefaultChecks(),
		now:     time.Now,
		runtime: selfRuntime,
	})
	return nil, nil
}

type server struct {
	triagev1.UnimplementedExplainServiceServer
	info    capability.ServerInfo
	procs   *process.Inspector
	checks  []Check
	now     func() time.Time
	runtime func() Runtime
	cache   processCache
}

func (s *server) GetVersion(context.Context, *triagev1.GetVersionRequest) (*triagev1.GetVersionResponse, error) {
	return &triagev1.GetVersionResponse{Build: s.info.Build()}, nil
}

func (s *server) Explain(ctx context.Context, _ *triagev1.ExplainRequest) (*triagev1.ExplainResponse, error) {
	now := s.now()
	host, _ := os.Hostname()
	resp := &triagev1.ExplainResponse{
		Build:        s.info.Build(),
		Time:         timestamppb.New(now),
		Hostname:     host,
		Settings:     s.info.Settings(),
		Auth:         s.info.Auth(ctx),
		Capabilities: s.info.Capabilities(),
		Certificates: s.info.Certificates(),
	}
	facts := &Facts{Now: now, Certificates: resp.Certificates, Self: s.runtime()}
	list, procs, err := s.processes(ctx)
	if err == nil {
		resp.Processes = list
		facts.Processes = procs
	} else {
		resp.Findings = append(resp.Findings, &triagev1.Finding{
			Severity: triagev1.Severity_SEVERITY_WARNING, Code: "proc-unreadable",
			Message: "the process list could not be read: " + err.Error(),
			Fix:     "check --proc-root and that /proc is mounted in the sidecar container",
		})
	}
	resp.Findings = append(resp.Findings, Run(s.checks, facts)...)
	for _, c := range s.info.Contributors() {
		c(ctx, resp)
	}
	SortFindings(resp.Findings)
	return resp, nil
}

// factsTTL is how long explain reuses what it read of /proc. Callers that
// arrive together (a fleet-wide explain, a dashboard) share one read instead
// of each walking every process: that bounds both the CPU and the transient
// heap of a burst.
const factsTTL = time.Second

// processCache holds the last process listing and inspection.
type processCache struct {
	mu    sync.Mutex
	at    time.Time
	list  []*triagev1.ProcessSummary
	procs []*triagev1.Process
}

// processes returns the process list and the inspected processes, read at
// most once per factsTTL; concurrent callers wait for one read.
func (s *server) processes(ctx context.Context) ([]*triagev1.ProcessSummary, []*triagev1.Process, error) {
	c := &s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := s.now(); now.Sub(c.at) < factsTTL && c.list != nil {
		return c.list, c.procs, nil
	}
	list, _, err := s.procs.List()
	if err != nil {
		return nil, nil, err
	}
	// Not the caller's cancellation: the result is shared with other callers.
	c.list, c.procs, c.at = list, s.inspect(context.WithoutCancel(ctx), list), s.now()
	return c.list, c.procs, nil
}

// inspect reads the full state of the sidecar itself and up to maxInspected
// other processes, stopping early if the caller gives up.
func (s *server) inspect(ctx context.Context, list []*triagev1.ProcessSummary) []*triagev1.Process {
	ordered := append([]*triagev1.ProcessSummary(nil), list...)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].Self && !ordered[j].Self })
	var out []*triagev1.Process
	for _, p := range ordered {
		if len(out) == maxInspected || ctx.Err() != nil {
			break
		}
		full, err := s.procs.Facts(int(p.Pid))
		if err != nil {
			continue // exited since the listing
		}
		out = append(out, full)
	}
	return out
}
