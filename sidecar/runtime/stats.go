package runtime

import (
	"context"
	"encoding/json"
	"math"
	"runtime/debug"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// GetRuntimeStats returns the target's runtime/metrics with the figures an
// on-call engineer reads first worked out.
func (s *server) GetRuntimeStats(ctx context.Context, req *triagev1.GetRuntimeStatsRequest) (*triagev1.GetRuntimeStatsResponse, error) {
	t, err := s.resolve(req.GetTarget())
	if err != nil {
		return nil, err
	}
	if t.gops != nil {
		return s.gopsStats(ctx, t.gops)
	}
	return agentStats(ctx, t.agent)
}

func agentStats(ctx context.Context, a *agentTarget) (*triagev1.GetRuntimeStatsResponse, error) {
	st, err := a.client.GetRuntimeStats(ctx, &agentv1.GetRuntimeStatsRequest{})
	if err != nil {
		return nil, agentErr(a, "runtime stats", err)
	}
	info, err := a.client.GetInfo(ctx, &agentv1.GetInfoRequest{})
	if err != nil {
		return nil, agentErr(a, "agent info", err)
	}
	out := Summarize(st)
	out.Source, out.Pid, out.GoVersion = a.source, info.Pid, info.GoVersion
	out.Build = BuildProto(info.BuildInfoJson)
	return out, nil
}

// Metric names read by Summarize (runtime/metrics).
const (
	mGoroutines   = "/sched/goroutines:goroutines"
	mHeapLive     = "/gc/heap/live:bytes"
	mHeapGoal     = "/gc/heap/goal:bytes"
	mGCCycles     = "/gc/cycles/total:gc-cycles"
	mGCCPU        = "/cpu/classes/gc/total:cpu-seconds"
	mTotalCPU     = "/cpu/classes/total:cpu-seconds"
	mGCPauses     = "/sched/pauses/total/gc:seconds"
	mSchedLatency = "/sched/latencies:seconds"
)

// Summarize works out the headline figures from an agent's snapshot.
func Summarize(st *agentv1.GetRuntimeStatsResponse) *triagev1.GetRuntimeStatsResponse {
	out := &triagev1.GetRuntimeStatsResponse{
		Gogc: st.Gogc, Gomaxprocs: st.Gomaxprocs, NumCpu: st.NumCpu, Goroutines: int64(st.NumGoroutine),
		Uptime: st.Uptime, Metrics: map[string]float64{},
	}
	if st.GomemlimitBytes != math.MaxInt64 {
		out.GomemlimitBytes = st.GomemlimitBytes
	}
	hists := map[string]*agentv1.Histogram{}
	for _, m := range st.Metrics {
		switch v := m.Value.(type) {
		case *agentv1.Metric_Uint64Value:
			out.Metrics[m.Name] = float64(v.Uint64Value)
		case *agentv1.Metric_Float64Value:
			out.Metrics[m.Name] = v.Float64Value
		case *agentv1.Metric_Histogram:
			hists[m.Name] = v.Histogram
		}
	}
	out.HeapLiveBytes = uint64(out.Metrics[mHeapLive])
	out.HeapGoalBytes = uint64(out.Metrics[mHeapGoal])
	out.GcCycles = uint64(out.Metrics[mGCCycles])
	if total := out.Metrics[mTotalCPU]; total > 0 {
		out.GcCpuFraction = out.Metrics[mGCCPU] / total
	}
	if h := hists[mGCPauses]; h != nil {
		out.GcPauseP50 = seconds(quantile(h, 0.5))
		out.GcPauseP99 = seconds(quantile(h, 0.99))
	}
	if h := hists[mSchedLatency]; h != nil {
		out.SchedLatencyP99 = seconds(quantile(h, 0.99))
	}
	return out
}

// quantile estimates the q-quantile of a runtime/metrics histogram as the
// upper bound of the bucket it falls in (a conservative estimate); NaN when empty.
func quantile(h *agentv1.Histogram, q float64) float64 {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 || len(h.Buckets) != len(h.Counts)+1 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			ub := h.Buckets[i+1]
			if math.IsInf(ub, 1) {
				ub = h.Buckets[i]
			}
			return ub
		}
	}
	return h.Buckets[len(h.Buckets)-1]
}

func seconds(s float64) *durationpb.Duration {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return nil
	}
	return durationpb.New(time.Duration(s * float64(time.Second)))
}

// BuildProto decodes the agent's debug.BuildInfo JSON; nil when absent.
func BuildProto(js string) *triagev1.GoBuild {
	if js == "" {
		return nil
	}
	var bi debug.BuildInfo
	if err := json.Unmarshal([]byte(js), &bi); err != nil {
		return nil
	}
	out := &triagev1.GoBuild{GoVersion: bi.GoVersion, Path: bi.Path, Main: module(&bi.Main), Settings: map[string]string{}}
	for _, d := range bi.Deps {
		out.Deps = append(out.Deps, module(d))
	}
	for _, s := range bi.Settings {
		out.Settings[s.Key] = s.Value
	}
	return out
}

func module(m *debug.Module) *triagev1.GoModule {
	if m == nil {
		return nil
	}
	out := &triagev1.GoModule{Path: m.Path, Version: m.Version, Sum: m.Sum}
	if m.Replace != nil {
		out.Replace = module(m.Replace)
	}
	return out
}
