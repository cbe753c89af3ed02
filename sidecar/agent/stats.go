package agent

import (
	"encoding/json"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// Metrics the settings are read from: reading them is side-effect free,
// unlike debug.SetGCPercent(-1) and debug.SetMemoryLimit(-1) round trips.
const (
	metricGOGC       = "/gc/gogc:percent"
	metricGOMEMLIMIT = "/gc/gomemlimit:bytes"
)

// runtimeStats reads every runtime/metrics sample and the runtime's settings.
func runtimeStats() *agentv1.GetRuntimeStatsResponse {
	descs := metrics.All()
	samples := make([]metrics.Sample, len(descs))
	for i, d := range descs {
		samples[i].Name = d.Name
	}
	metrics.Read(samples)
	resp := &agentv1.GetRuntimeStatsResponse{
		Metrics:         make([]*agentv1.Metric, 0, len(samples)),
		Gogc:            100,
		GomemlimitBytes: math.MaxInt64,
		Gomaxprocs:      int32(runtime.GOMAXPROCS(0)),
		NumGoroutine:    int32(runtime.NumGoroutine()),
		NumCpu:          int32(runtime.NumCPU()),
		Uptime:          durationpb.New(time.Since(processStart)),
		Time:            timestamppb.Now(),
	}
	for _, s := range samples {
		m := &agentv1.Metric{Name: s.Name}
		switch s.Value.Kind() {
		case metrics.KindUint64:
			v := s.Value.Uint64()
			m.Value = &agentv1.Metric_Uint64Value{Uint64Value: v}
			switch s.Name {
			case metricGOGC:
				// GOGC=off reads as -1 cast to uint64.
				resp.Gogc = int32(int64(v))
			case metricGOMEMLIMIT:
				resp.GomemlimitBytes = int64(min(v, math.MaxInt64))
			}
		case metrics.KindFloat64:
			m.Value = &agentv1.Metric_Float64Value{Float64Value: s.Value.Float64()}
		case metrics.KindFloat64Histogram:
			h := s.Value.Float64Histogram()
			m.Value = &agentv1.Metric_Histogram{Histogram: &agentv1.Histogram{Counts: h.Counts, Buckets: finite(h.Buckets)}}
		default: // KindBad: not supported by this runtime
			continue
		}
		resp.Metrics = append(resp.Metrics, m)
	}
	return resp
}

// finite keeps ±Inf bucket bounds (valid in proto doubles) but guards NaN.
func finite(b []float64) []float64 {
	for i, v := range b {
		if math.IsNaN(v) {
			b[i] = 0
		}
	}
	return b
}

// info describes the process and the agent.
func (a *Agent) info() *agentv1.GetInfoResponse {
	resp := &agentv1.GetInfoResponse{
		Pid:              int32(os.Getpid()),
		Started:          timestamppb.New(processStart),
		AgentVersion:     a.opts.Version,
		GoVersion:        runtime.Version(),
		FlightRecorder:   a.flight != nil && a.flight.Enabled(),
		RegisteredConfig: a.registry.names(kindConfig),
		RegisteredState:  a.registry.names(kindState),
		ExclusiveBusy:    a.slots.busy(groupCPUWall),
	}
	if resp.FlightRecorder {
		resp.FlightRecorderWindow = durationpb.New(a.opts.FlightRecorderWindow)
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b, err := json.Marshal(bi); err == nil {
			resp.BuildInfoJson = string(b)
		}
	}
	return resp
}
