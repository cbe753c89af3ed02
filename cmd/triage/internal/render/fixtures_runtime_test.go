package render

import (
	"fmt"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Hand-made runtime responses for the golden tests.

func frames(n int) []*triagev1.StackFrame {
	out := []*triagev1.StackFrame{
		{Function: "runtime.gopark", File: "/usr/local/go/src/runtime/proc.go", Line: 435},
		{Function: "runtime.chanrecv", File: "/usr/local/go/src/runtime/chan.go", Line: 664},
		{Function: "main.(*Pool).worker", File: "/app/pool.go", Line: 88},
	}
	for i := len(out); i < n; i++ {
		out = append(out, &triagev1.StackFrame{Function: fmt.Sprintf("main.deep%d", i), File: "/app/deep.go", Line: int64(10 + i)})
	}
	return out[:n]
}

func fixtureGoroutines() *GoroutineView {
	return &GoroutineView{
		Summary: &triagev1.GoroutineSummary{
			Total: 1240, Groups: 3, Path: triagev1.GoroutinePath_GOROUTINE_PATH_TEXT, Source: "agent", Pid: 7,
			Collected: dur(42 * time.Millisecond), Time: ts(fixtureNow),
			Notes: []string{"the text path stopped the world for 38ms"},
		},
		Groups: []*triagev1.GoroutineGroup{
			{Count: 1200, State: "chan receive", Frames: frames(3), MinWait: dur(5 * time.Minute), MaxWait: dur(12 * time.Minute),
				CreatedBy: &triagev1.StackFrame{Function: "main.NewPool", File: "/app/pool.go", Line: 40}, Ids: []int64{18, 19},
				Labels: map[string]string{"tenant": "acme", "handler": "/checkout"}},
			{Count: 38, State: "sync.Mutex.Lock", Frames: frames(15), MinWait: dur(time.Minute), MaxWait: dur(time.Minute), FramesElided: true},
			{Count: 2, State: "running", Frames: frames(1), LockedToThread: true},
		},
	}
}

// fixtureProfilePath is a dump from the profile path: no states, no waits.
func fixtureProfilePath() *GoroutineView {
	return &GoroutineView{
		Summary: &triagev1.GoroutineSummary{
			Total: 1240, Groups: 1, Path: triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE, Source: "self", Pid: 31,
			Collected: dur(900 * time.Microsecond), Time: ts(fixtureNow),
			Notes: []string{"the profile path has no wait states or creators; --path text has them but stops the world"},
		},
		Groups: []*triagev1.GoroutineGroup{{Count: 30, Frames: frames(2)}},
	}
}

func fixtureDiff() *GoroutineDiffView {
	g := fixtureGoroutines().Groups
	return &GoroutineDiffView{
		Before: "before.json", After: "live dump (agent, pid 7, path text)", BeforeTotal: 300, AfterTotal: 1240,
		Deltas: []GoroutineDelta{
			{Group: g[0], Before: 250, After: 1200, Change: 950},
			{Group: g[1], Before: 0, After: 38, Change: 38},
			{Group: g[2], Before: 2, After: 2},
			{Group: &triagev1.GoroutineGroup{Count: 48, State: "IO wait", Frames: frames(2)}, Before: 48, After: 0, Change: -48},
		},
	}
}

func fixtureRuntime() *triagev1.GetRuntimeStatsResponse {
	return &triagev1.GetRuntimeStatsResponse{
		Source: "agent", Pid: 7, GoVersion: "go1.26.0", Gogc: 100, GomemlimitBytes: 512 << 20, Gomaxprocs: 4, NumCpu: 8,
		Goroutines: 1240, HeapLiveBytes: 300 << 20, HeapGoalBytes: 480 << 20, GcCycles: 4211, GcCpuFraction: 0.31,
		GcPauseP50: dur(120 * time.Microsecond), GcPauseP99: dur(2300 * time.Microsecond), SchedLatencyP99: dur(15 * time.Millisecond),
		Uptime:  dur(3*time.Hour + 12*time.Minute + 5*time.Second),
		Metrics: map[string]float64{"/gc/cycles/total:gc-cycles": 4211, "/sched/goroutines:goroutines": 1240},
		Build: &triagev1.GoBuild{GoVersion: "go1.26.0", Path: "example.com/shop/cmd/checkout",
			Main: &triagev1.GoModule{Path: "example.com/shop", Version: "v1.4.2"},
			Deps: []*triagev1.GoModule{{Path: "google.golang.org/grpc", Version: "v1.85.0"}, {Path: "github.com/felixge/fgprof", Version: "v0.9.5"}}},
	}
}

// fixtureRuntimeGops is what gops can give: no runtime/metrics.
func fixtureRuntimeGops() *triagev1.GetRuntimeStatsResponse {
	return &triagev1.GetRuntimeStatsResponse{
		Source: "gops", Pid: 12, GoVersion: "go1.22.3", Gomaxprocs: 2, NumCpu: 2, Goroutines: 55, HeapLiveBytes: 12 << 20, GcCycles: 9, Gogc: -1,
		Unavailable: []*triagev1.Unavailable{
			{Field: "gc_pause_p50", Reason: "gops has no runtime/metrics: link the triage agent"},
			{Field: "sched_latency_p99", Reason: "gops has no runtime/metrics: link the triage agent"},
			{Field: "build", Reason: "gops version gives the Go version only"},
			{Field: "metrics", Reason: "gops has no runtime/metrics"},
		},
	}
}

func fixtureExplainApp() *triagev1.ExplainResponse {
	r := fixtureExplain()
	r.App = &triagev1.App{
		Source: "agent", Address: "/var/run/triage/agent.sock", Reachable: true, Pid: 7, GoVersion: "go1.26.0",
		Build:        fixtureRuntime().Build,
		Uptime:       dur(3*time.Hour + 12*time.Minute + 40*time.Second),
		AgentVersion: "v0.3.1",
		Config: []*triagev1.RegisteredValue{
			{Name: "server", Json: `{"addr": ":8080", "timeout": "5s"}`},
			{Name: "db", Json: `{"dsn":"[redacted]","pool":{"max_open":50,"max_idle":10,"lifetime":"30m"},"replicas":["db-1:5432","db-2:5432"]}`},
		},
		State: []*triagev1.RegisteredValue{
			{Name: "cache", Json: `{"entries":42,"hit_ratio":0.93}`},
			{Name: "queue", Error: "callback panicked:\n  index out of range"},
			{Name: "raw", Json: `not json`},
		},
	}
	return r
}
