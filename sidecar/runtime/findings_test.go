package runtime

import (
	"math"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func findingCodes(fs []*triagev1.Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return strings.Join(out, ",")
}

func TestRuntimeFindings(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		first *triagev1.GetRuntimeStatsResponse // an earlier look, if any
		st    *triagev1.GetRuntimeStatsResponse
		want  string
	}{
		{"quiet", nil, &triagev1.GetRuntimeStatsResponse{Source: "agent", Goroutines: 100, GcCpuFraction: 0.05}, ""},
		{"gc cpu high", nil, &triagev1.GetRuntimeStatsResponse{Source: "agent", GcCpuFraction: 0.31}, "gc-cpu-high"},
		{"heap near gomemlimit", nil, &triagev1.GetRuntimeStatsResponse{Source: "agent", GomemlimitBytes: 100 << 20,
			Metrics: map[string]float64{mMemTotal: 98 << 20, mMemHeapReleased: 2 << 20}}, "heap-near-gomemlimit"},
		{"heap well under gomemlimit", nil, &triagev1.GetRuntimeStatsResponse{Source: "agent", GomemlimitBytes: 100 << 20,
			Metrics: map[string]float64{mMemTotal: 98 << 20, mMemHeapReleased: 40 << 20}}, ""},
		{"goroutines grew", &triagev1.GetRuntimeStatsResponse{Source: "agent", Pid: 7, Goroutines: 1000},
			&triagev1.GetRuntimeStatsResponse{Source: "agent", Pid: 7, Goroutines: 2600}, "goroutines-growing"},
		{"goroutines grew a little", &triagev1.GetRuntimeStatsResponse{Source: "agent", Pid: 7, Goroutines: 100},
			&triagev1.GetRuntimeStatsResponse{Source: "agent", Pid: 7, Goroutines: 400}, ""},
		{"another process", &triagev1.GetRuntimeStatsResponse{Source: "agent", Pid: 7, Goroutines: 1000},
			&triagev1.GetRuntimeStatsResponse{Source: "agent", Pid: 8, Goroutines: 2600}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{o: DefaultOptions(), looks: map[string]look{}}
			if tt.first != nil {
				if got := s.runtimeFindings(tt.first, t0); len(got) != 0 {
					t.Fatalf("first look: %v", got)
				}
			}
			got := s.runtimeFindings(tt.st, t0.Add(time.Minute))
			if findingCodes(got) != tt.want {
				t.Fatalf("findings %q, want %q", findingCodes(got), tt.want)
			}
			for _, f := range got {
				if f.Message == "" || f.Fix == "" || len(f.Evidence) == 0 {
					t.Errorf("incomplete finding %v", f)
				}
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	st := &agentv1.GetRuntimeStatsResponse{Gogc: 100, GomemlimitBytes: math.MaxInt64, NumGoroutine: 12, Metrics: []*agentv1.Metric{
		{Name: mHeapLive, Value: &agentv1.Metric_Uint64Value{Uint64Value: 1 << 20}},
		{Name: mGCCPU, Value: &agentv1.Metric_Float64Value{Float64Value: 1}},
		{Name: mTotalCPU, Value: &agentv1.Metric_Float64Value{Float64Value: 4}},
		{Name: mGCPauses, Value: &agentv1.Metric_Histogram{Histogram: &agentv1.Histogram{
			Counts: []uint64{90, 9, 1}, Buckets: []float64{0, 0.001, 0.01, math.Inf(1)}}}},
	}}
	out := Summarize(st)
	if out.GomemlimitBytes != 0 || out.HeapLiveBytes != 1<<20 || out.GcCpuFraction != 0.25 || out.Goroutines != 12 {
		t.Fatalf("%v", out)
	}
	if out.GcPauseP50.AsDuration() != time.Millisecond || out.GcPauseP99.AsDuration() != 10*time.Millisecond {
		t.Fatalf("pauses p50=%v p99=%v, want 1ms and 10ms (bucket upper bounds)", out.GcPauseP50.AsDuration(), out.GcPauseP99.AsDuration())
	}
}

func TestBlockingState(t *testing.T) {
	for st, want := range map[string]bool{"chan receive": true, "chan send": true, "select": true, "sync.Mutex.Lock": true,
		"semacquire": true, "sleep": false, "IO wait": false, "running": false, "": false} {
		if blockingState(st) != want {
			t.Errorf("blockingState(%q) = %v", st, !want)
		}
	}
}

// The sidecar passes profile types to the agent by number: the two enums
// must stay in step.
func TestProfileTypesMatchTheAgent(t *testing.T) {
	for n, name := range triagev1.ProfileType_name {
		if agentv1.ProfileType_name[n] != name {
			t.Errorf("triage.v1 %s = %d but triage.agent.v1 has %q there", name, n, agentv1.ProfileType_name[n])
		}
	}
	if len(triagev1.ProfileType_name) != len(agentv1.ProfileType_name) {
		t.Errorf("%d public profile types, %d agent ones", len(triagev1.ProfileType_name), len(agentv1.ProfileType_name))
	}
}
