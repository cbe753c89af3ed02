package agent

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exclusive groups: at most one holder each.
const (
	groupCPUWall  = "cpu-wall"  // one CPU or wall profile at a time
	groupTrace    = "trace"     // runtime/trace allows one tracer
	groupFlight   = "flight"    // FlightRecorder.WriteTo allows one writer
	groupBlock    = "block"     // the block rate is process-wide
	groupMutex    = "mutex"     // the mutex fraction is process-wide
	groupTextDump = "text-dump" // runtime.Stack(all) stops the world and buffers the dump
)

// slots hands out the exclusive groups.
type slots struct {
	mu   sync.Mutex
	held map[string]holding
}

type holding struct {
	what, holder string
	started      time.Time
	duration     time.Duration
}

func (h holding) String() string {
	who := h.holder
	if who == "" {
		who = "an unnamed caller"
	}
	s := fmt.Sprintf("%s for %s, running for %s", h.what, who, time.Since(h.started).Round(time.Millisecond))
	if h.duration > 0 {
		s += fmt.Sprintf(" of %s", h.duration)
	}
	return s
}

// acquire takes group or fails with ResourceExhausted naming the holder.
func (s *slots) acquire(group, what, holder string, d time.Duration) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, busy := s.held[group]; busy {
		return nil, status.Errorf(codes.ResourceExhausted,
			"busy: %s; the agent runs one at a time: retry when it ends", h)
	}
	if s.held == nil {
		s.held = map[string]holding{}
	}
	s.held[group] = holding{what: what, holder: holder, started: time.Now(), duration: d}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.held, group)
	}, nil
}

// busy describes the holder of group, or "".
func (s *slots) busy(group string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.held[group]; ok {
		return h.String()
	}
	return ""
}
