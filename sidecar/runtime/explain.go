package runtime

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/internal/goroutines"
	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// explainTimeout bounds what explain asks of the app.
const explainTimeout = 3 * time.Second

// look is one goroutine count seen by explain.
type look struct {
	count int64
	at    time.Time
}

// explain contributes the app (its build, uptime, registered config and
// state) and runtime findings to explain.
func (s *server) explain(ctx context.Context, resp *triagev1.ExplainResponse) {
	ctx, cancel := context.WithTimeout(ctx, explainTimeout)
	defer cancel()
	switch {
	case s.app != nil:
		resp.App = s.appInfo(ctx, s.app)
		if !resp.App.Reachable {
			resp.Findings = append(resp.Findings, &triagev1.Finding{
				Severity: triagev1.Severity_SEVERITY_WARNING, Code: "agent-unreachable",
				Message:  "the app's triage agent does not answer at " + s.app.address,
				Evidence: []string{resp.App.Reason},
				Fix:      "check that the app calls agent.Start and shares the socket's emptyDir with the sidecar (TRIAGE_AGENT_SOCKET)",
			})
			return
		}
		stats, err := agentStats(ctx, s.app)
		if err != nil {
			return
		}
		resp.Findings = append(resp.Findings, s.runtimeFindings(stats, time.Now())...)
		resp.Findings = append(resp.Findings, s.waitFindings(ctx, s.app, stats.Goroutines)...)
	case s.gops != nil:
		app := &triagev1.App{Source: "gops", Address: s.o.GopsAddr}
		v, err := s.gops.Version(ctx)
		app.Reachable, app.GoVersion = err == nil, v
		if err != nil {
			app.Reason = err.Error()
		}
		resp.App = app
	}
}

// appInfo asks the agent who the app is and what it registered.
func (s *server) appInfo(ctx context.Context, a *agentTarget) *triagev1.App {
	app := &triagev1.App{Source: a.source, Address: a.address}
	info, err := a.client.GetInfo(ctx, &agentv1.GetInfoRequest{})
	if err != nil {
		app.Reason = agentErr(a, "agent info", err).Error()
		return app
	}
	app.Reachable, app.Pid, app.GoVersion, app.AgentVersion = true, info.Pid, info.GoVersion, info.AgentVersion
	app.Build = BuildProto(info.BuildInfoJson)
	if info.Started != nil {
		app.Uptime = durationpb.New(time.Since(info.Started.AsTime()).Truncate(time.Second))
	}
	if reg, err := a.client.GetRegistered(ctx, &agentv1.GetRegisteredRequest{}); err == nil {
		app.Config, app.State = registered(reg.Config), registered(reg.State)
	}
	return app
}

func registered(in []*agentv1.Registered) []*triagev1.RegisteredValue {
	out := make([]*triagev1.RegisteredValue, 0, len(in))
	for _, r := range in {
		out = append(out, &triagev1.RegisteredValue{Name: r.Name, Json: r.Json, Error: r.Error})
	}
	return out
}

// Thresholds of the runtime findings.
const (
	gcCPUHigh        = 0.25
	heapNearLimit    = 0.90
	growthRatio      = 1.5
	growthMin        = 500
	longWait         = time.Minute
	mMemTotal        = "/memory/classes/total:bytes"
	mMemHeapReleased = "/memory/classes/heap/released:bytes"
)

// runtimeFindings reads the failure shapes in a runtime snapshot.
func (s *server) runtimeFindings(st *triagev1.GetRuntimeStatsResponse, now time.Time) []*triagev1.Finding {
	var out []*triagev1.Finding
	if st.GcCpuFraction > gcCPUHigh {
		out = append(out, &triagev1.Finding{
			Severity: triagev1.Severity_SEVERITY_WARNING, Code: "gc-cpu-high", Pid: st.Pid,
			Message:  fmt.Sprintf("the garbage collector has used %.0f%% of the app's CPU since it started", st.GcCpuFraction*100),
			Evidence: []string{fmt.Sprintf("gc_cpu_fraction=%.3f", st.GcCpuFraction), fmt.Sprintf("gogc=%d", st.Gogc), fmt.Sprintf("heap_goal=%d", st.HeapGoalBytes)},
			Fix:      "allocate less (triage profile --type allocs), or raise GOGC / GOMEMLIMIT if memory allows",
		})
	}
	if lim := st.GomemlimitBytes; lim > 0 {
		used := st.Metrics[mMemTotal] - st.Metrics[mMemHeapReleased]
		if r := used / float64(lim); r >= heapNearLimit {
			out = append(out, &triagev1.Finding{
				Severity: triagev1.Severity_SEVERITY_WARNING, Code: "heap-near-gomemlimit", Pid: st.Pid,
				Message:  fmt.Sprintf("the Go runtime's memory is at %.0f%% of GOMEMLIMIT: the GC runs ever more often (a death spiral if it cannot free enough)", r*100),
				Evidence: []string{fmt.Sprintf("runtime_memory=%.0f", used), fmt.Sprintf("gomemlimit=%d", lim), fmt.Sprintf("heap_live=%d", st.HeapLiveBytes)},
				Fix:      "find what holds memory (triage profile --type heap); raise GOMEMLIMIT with the container's limit",
			})
		}
	}
	key := fmt.Sprintf("%s/%d", st.Source, st.Pid)
	s.mu.Lock()
	prev, seen := s.looks[key]
	s.looks[key] = look{count: st.Goroutines, at: now}
	s.mu.Unlock()
	if seen && float64(st.Goroutines) >= float64(prev.count)*growthRatio && st.Goroutines-prev.count >= growthMin {
		out = append(out, &triagev1.Finding{
			Severity: triagev1.Severity_SEVERITY_WARNING, Code: "goroutines-growing", Pid: st.Pid,
			Message:  fmt.Sprintf("goroutines grew from %d to %d in %s (a leak grows between looks)", prev.count, st.Goroutines, now.Sub(prev.at).Round(time.Second)),
			Evidence: []string{fmt.Sprintf("before=%d at %s", prev.count, prev.at.UTC().Format(time.RFC3339)), fmt.Sprintf("now=%d", st.Goroutines)},
			Fix:      "save a dump now and diff it with a later one: triage goroutines --save a.json; ...; triage goroutines --diff a.json",
		})
	}
	return out
}

// waitFindings looks for goroutines waiting on one channel or lock for
// over a minute. Wait times exist only in the text dump, which stops the
// world, so it is taken only for apps with at most TextDumpLimit goroutines.
func (s *server) waitFindings(ctx context.Context, a *agentTarget, n int64) []*triagev1.Finding {
	if n > int64(s.o.TextDumpLimit) {
		return []*triagev1.Finding{{
			Severity: triagev1.Severity_SEVERITY_INFO, Code: "long-wait-unchecked",
			Message:  fmt.Sprintf("long waits were not checked: %d goroutines is over --explain-text-dump-limit=%d (the check stops the world)", n, s.o.TextDumpLimit),
			Evidence: []string{fmt.Sprintf("goroutines=%d", n)},
			Fix:      "triage goroutines --path text --min-wait 1m (stops the world for the dump)",
		}}
	}
	d, _, _, err := s.dump(ctx, target{agent: a}, triagev1.GoroutinePath_GOROUTINE_PATH_TEXT)
	if err != nil {
		return nil
	}
	var out []*triagev1.Finding
	for _, g := range d.Group(goroutines.GroupOptions{MinWait: longWait}) {
		if !blockingState(g.State) {
			continue
		}
		where := "?"
		for _, f := range g.Frames {
			if !strings.HasPrefix(f.Function, "runtime.") && !strings.HasPrefix(f.Function, "sync.") && !strings.HasPrefix(f.Function, "internal/") {
				where = fmt.Sprintf("%s (%s:%d)", f.Function, f.File, f.Line)
				break
			}
		}
		out = append(out, &triagev1.Finding{
			Severity: triagev1.Severity_SEVERITY_WARNING, Code: "long-wait", Pid: a.pid(ctx),
			Message:  fmt.Sprintf("%d goroutine(s) have waited in %s for over %s at %s", g.Count, g.State, g.MaxWait, where),
			Evidence: []string{fmt.Sprintf("count=%d", g.Count), "state=" + g.State, "max_wait=" + g.MaxWait.String()},
			Fix:      "a lost wake-up or a lock held too long: triage goroutines --path text --min-wait 1m shows the stacks",
		})
	}
	return out
}

// blockingState reports whether a wait state is on a channel or a lock.
func blockingState(st string) bool {
	for _, p := range []string{"chan ", "select", "sync.", "semacquire", "sync.Mutex", "sync.RWMutex", "sync.Cond"} {
		if strings.HasPrefix(st, p) {
			return true
		}
	}
	return false
}

// pid asks the agent for the app's pid; 0 when it cannot.
func (a *agentTarget) pid(ctx context.Context) int32 {
	info, err := a.client.GetInfo(ctx, &agentv1.GetInfoRequest{})
	if err != nil {
		return 0
	}
	return info.Pid
}
