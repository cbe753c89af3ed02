package runtime

import (
	"fmt"
	"sync"

	"github.com/triage-sh/triage/internal/gops"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// server implements RuntimeService.
type server struct {
	triagev1.UnimplementedRuntimeServiceServer
	o       Options
	self    *agentTarget // the sidecar's own in-process agent
	app     *agentTarget // the app's agent; nil when not configured
	gops    gopsTarget   // the app's gops agent; nil when not configured
	closers []func()

	mu    sync.Mutex
	looks map[string]look // the last goroutine count seen per target, for growth findings
}

func newServer(o Options, d capability.Deps) (_ *server, err error) {
	s := &server{o: o, looks: map[string]look{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	self, stop, err := startSelf()
	if err != nil {
		return nil, fmt.Errorf("start the sidecar's own agent: %w", err)
	}
	s.self = self
	s.closers = append(s.closers, stop)
	if o.AgentSocket != "" {
		if s.app, err = dialAgent(o.AgentSocket); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { s.app.conn.Close() })
	}
	named := 0
	for _, set := range []bool{o.AgentSocket != "", o.GopsAddr != "", o.GopsPID != 0} {
		if set {
			named++
		}
	}
	if named > 1 {
		return nil, fmt.Errorf("--agent-socket, --gops-addr and --gops-pid each name the app: keep one")
	}
	switch {
	case o.GopsAddr != "":
		s.gops = &gops.Client{Addr: o.GopsAddr, MaxBytes: o.MaxDumpBytes}
	case o.GopsPID < 0:
		return nil, fmt.Errorf("--gops-pid must be a pid")
	case o.GopsPID > 0:
		s.gops = gopsByPID{pid: o.GopsPID, procRoot: d.ProcRoot, maxBytes: o.MaxDumpBytes}
	}
	return s, nil
}

func (s *server) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}
