package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/goroutines"
	"github.com/triage-sh/triage/internal/goroutines/goroutinespb"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar"
	"github.com/triage-sh/triage/sidecar/capability"
	"github.com/triage-sh/triage/sidecar/explain"
	"github.com/triage-sh/triage/sidecar/process"
	"github.com/triage-sh/triage/sidecar/sidecartest"
)

// synthDump is a debug=2 text dump with count goroutines of each named
// function, blocked in "chan receive" for waitMin minutes and created by
// main.start. Function names sort in the order given.
func synthDump(waitMin int, counts ...any) string {
	var b strings.Builder
	id := 1
	for i := 0; i+1 < len(counts); i += 2 {
		fn, n := counts[i].(string), counts[i+1].(int)
		for range n {
			id++
			wait := ""
			if waitMin > 0 {
				wait = fmt.Sprintf(", %d minutes", waitMin)
			}
			fmt.Fprintf(&b, "goroutine %d [chan receive%s]:\n", id, wait)
			fmt.Fprintf(&b, "runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)\n\t/usr/local/go/src/runtime/proc.go:435 +0xce\n")
			fmt.Fprintf(&b, "main.%s(...)\n\t/app/%s.go:%d +0x1d\n", fn, fn, 10+i)
			fmt.Fprintf(&b, "created by main.start in goroutine 1\n\t/app/main.go:30 +0x55\n\n")
		}
	}
	return b.String()
}

// fakeDump is the text dump the fake runtime serves: 40 leakers, 3
// workers, 1 poller.
var fakeDump = synthDump(3, "leak", 40, "worker", 3, "poll", 1)

// fakeProfile is the bytes the fake streams as a profile, in three chunks.
var fakeProfile = []string{"\x1f\x8bfake-", "pprof-", "bytes"}

// fakeRuntime is a RuntimeService that answers from fixed data, as the
// real capability would, and records the requests it got.
type fakeRuntime struct {
	triagev1.UnimplementedRuntimeServiceServer

	mu       sync.Mutex
	goreqs   []*triagev1.GetGoroutinesRequest
	profreqs []*triagev1.ProfileRequest
}

func (f *fakeRuntime) lastGoroutines() *triagev1.GetGoroutinesRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.goreqs[len(f.goreqs)-1]
}

func (f *fakeRuntime) lastProfile() *triagev1.ProfileRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.profreqs[len(f.profreqs)-1]
}

// fakeGroups groups the fake dump the way the server does.
func fakeGroups(req *triagev1.GetGoroutinesRequest) (*goroutines.Dump, []*triagev1.GoroutineGroup) {
	d, err := goroutines.Parse(strings.NewReader(fakeDump))
	if err != nil {
		panic(err)
	}
	return d, goroutinespb.Groups(d.Group(goroutines.GroupOptions{MinWait: req.GetMinWait().AsDuration()}))
}

func (f *fakeRuntime) GetGoroutines(req *triagev1.GetGoroutinesRequest, s grpc.ServerStreamingServer[triagev1.GetGoroutinesResponse]) error {
	f.mu.Lock()
	f.goreqs = append(f.goreqs, proto.Clone(req).(*triagev1.GetGoroutinesRequest))
	f.mu.Unlock()
	if req.GetFilter() == "busy" {
		return status.Error(codes.ResourceExhausted, "a goroutine dump of this target is already running: retry in a few seconds")
	}
	d, groups := fakeGroups(req)
	sum := &triagev1.GoroutineSummary{
		Total: int64(d.Total), Groups: int64(len(groups)), Path: triagev1.GoroutinePath_GOROUTINE_PATH_TEXT, Source: "agent", Pid: 7,
		Collected: durationpb.New(3 * time.Millisecond), Time: timestamppb.New(time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC)),
		Notes: []string{"fake: the text path was used"},
	}
	if err := s.Send(&triagev1.GetGoroutinesResponse{Part: &triagev1.GetGoroutinesResponse_Summary{Summary: sum}}); err != nil {
		return err
	}
	for _, g := range groups {
		if err := s.Send(&triagev1.GetGoroutinesResponse{Part: &triagev1.GetGoroutinesResponse_Group{Group: g}}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeRuntime) GetGoroutineDump(req *triagev1.GetGoroutineDumpRequest, s grpc.ServerStreamingServer[triagev1.GetGoroutineDumpResponse]) error {
	send := func(m *triagev1.GetGoroutineDumpResponse) error { return s.Send(m) }
	if err := send(&triagev1.GetGoroutineDumpResponse{Part: &triagev1.GetGoroutineDumpResponse_Header{Header: &triagev1.ArtifactHeader{MediaType: "text/plain", FileName: "goroutines.txt"}}}); err != nil {
		return err
	}
	// Two chunks, split mid-line.
	half := len(fakeDump) / 2
	for _, c := range []string{fakeDump[:half], fakeDump[half:]} {
		if err := send(&triagev1.GetGoroutineDumpResponse{Part: &triagev1.GetGoroutineDumpResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: []byte(c)}}}); err != nil {
			return err
		}
	}
	return send(&triagev1.GetGoroutineDumpResponse{Part: &triagev1.GetGoroutineDumpResponse_Trailer{Trailer: &triagev1.ArtifactTrailer{Bytes: uint64(len(fakeDump))}}})
}

func (f *fakeRuntime) Profile(req *triagev1.ProfileRequest, s grpc.ServerStreamingServer[triagev1.ProfileResponse]) error {
	f.mu.Lock()
	f.profreqs = append(f.profreqs, proto.Clone(req).(*triagev1.ProfileRequest))
	f.mu.Unlock()
	if req.GetType() == triagev1.ProfileType_PROFILE_TYPE_CPU && req.GetRate() == 7 {
		return status.Error(codes.ResourceExhausted, "a cpu profile of this target is already running (started by alice 4s ago): wait for it to end")
	}
	if err := s.Send(&triagev1.ProfileResponse{Part: &triagev1.ProfileResponse_Header{Header: &triagev1.ArtifactHeader{MediaType: "application/vnd.google.protobuf+pprof", FileName: "cpu.pprof"}}}); err != nil {
		return err
	}
	n := 0
	for i, c := range fakeProfile {
		if req.GetType() == triagev1.ProfileType_PROFILE_TYPE_MUTEX && i == 2 {
			// The stream breaks after two chunks.
			return status.Error(codes.Unavailable, "agent went away: the app restarted")
		}
		n += len(c)
		if err := s.Send(&triagev1.ProfileResponse{Part: &triagev1.ProfileResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: []byte(c)}}}); err != nil {
			return err
		}
	}
	t := &triagev1.ArtifactTrailer{Bytes: uint64(n), Duration: req.GetDuration(), Notes: []string{"fake: sampled 1 goroutine in 10 to stay cheap"}}
	return s.Send(&triagev1.ProfileResponse{Part: &triagev1.ProfileResponse_Trailer{Trailer: t}})
}

func (f *fakeRuntime) GetRuntimeStats(_ context.Context, req *triagev1.GetRuntimeStatsRequest) (*triagev1.GetRuntimeStatsResponse, error) {
	if req.GetTarget() == triagev1.Target_TARGET_APP {
		return nil, status.Error(codes.FailedPrecondition, "no app agent configured: set --agent-socket on the sidecar")
	}
	return &triagev1.GetRuntimeStatsResponse{
		Source: "self", Pid: 31, GoVersion: "go1.26.8", Gogc: 100, Gomaxprocs: 4, NumCpu: 8, Goroutines: 44,
		HeapLiveBytes: 3 << 20, HeapGoalBytes: 8 << 20, GcCycles: 12, GcCpuFraction: 0.004,
		GcPauseP50: durationpb.New(80 * time.Microsecond), GcPauseP99: durationpb.New(400 * time.Microsecond),
		SchedLatencyP99: durationpb.New(90 * time.Microsecond), Uptime: durationpb.New(2 * time.Minute),
		Metrics: map[string]float64{"/gc/cycles/total:gc-cycles": 12},
		Build:   &triagev1.GoBuild{GoVersion: "go1.26.8", Main: &triagev1.GoModule{Path: "github.com/triage-sh/triage", Version: "(devel)"}},
	}, nil
}

// startFakeRuntime starts a real sidecar in-process with explain, process
// and the fake runtime (its own table: the real runtime capability may be
// in DefaultCapabilities, and a service registered twice panics).
func startFakeRuntime(t *testing.T) (f *fakeRuntime, addr, dev string) {
	t.Helper()
	f = &fakeRuntime{}
	dev = t.TempDir()
	o := sidecar.DefaultOptions()
	o.Dev = dev
	o.Addr = "127.0.0.1:0"
	o.ReloadInterval = 0
	caps := []capability.Capability{explain.Capability(), process.Capability(), {
		Name: "fake-runtime",
		Register: func(s grpc.ServiceRegistrar, _ capability.Deps) (func(), error) {
			triagev1.RegisterRuntimeServiceServer(s, f)
			return nil, nil
		},
	}}
	srv := sidecartest.Serve(t, sidecar.Config{Options: o, Capabilities: caps, Logger: slog.New(slog.DiscardHandler), AuditWriter: discard{}})
	return f, srv.Addrs()[0].String(), dev
}

// runWith runs the command in-process with e's stdin and terminals.
func runWith(t *testing.T, stdin string, stderrTerminal bool, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, env{
		stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin),
		getenv:         func(string) string { return "" },
		stderrTerminal: stderrTerminal,
	})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}
