package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/gops"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// gopsTarget is what the sidecar uses of a gops agent (internal/gops).
type gopsTarget interface {
	Stack(ctx context.Context, w io.Writer) (int64, error)
	Version(ctx context.Context) (string, error)
	MemStats(ctx context.Context) (string, error)
	HeapProfile(ctx context.Context, w io.Writer) (int64, error)
	CPUProfile(ctx context.Context, w io.Writer) (int64, error)
	Trace(ctx context.Context, w io.Writer) (int64, error)
}

// needsAgent is the FailedPrecondition message for what gops cannot do.
func needsAgent(what string) error {
	return status.Errorf(codes.FailedPrecondition,
		"%s needs the triage agent: this app runs a gops agent, which offers stack, memstats, gc, version, stats, heap and CPU profiles and traces; link github.com/triage-sh/triage/sidecar/agent for wall-clock profiling, structured goroutines and registered config", what)
}

// gopsErr maps a gops client error.
func gopsErr(addr, what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, what+": cancelled")
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	var tl errTooLarge
	if errors.As(err, &tl) {
		return status.Error(codes.ResourceExhausted, what+": "+err.Error())
	}
	return status.Errorf(codes.Unavailable, "%s: the gops agent at %s: %v", what, addr, err)
}

// fromGops streams what a gops call writes as an artifact.
func (s *server) fromGops(ctx context.Context, out sink, media, file string, produce func(io.Writer) (int64, error)) error {
	start := time.Now()
	if err := out.header(&triagev1.ArtifactHeader{MediaType: media, FileName: file, Started: timestamppb.New(start),
		Attributes: map[string]string{"source": "gops"}}); err != nil {
		return err
	}
	cw := &chunkWriter{send: out.chunk, max: s.o.MaxDumpBytes}
	n, err := produce(cw)
	if err != nil {
		return gopsErr(s.o.GopsAddr, media, err)
	}
	return out.trailer(&triagev1.ArtifactTrailer{Bytes: uint64(n), Duration: durationpb.New(time.Since(start))})
}

// gopsProfile serves the profiles gops offers, at gops's own durations.
func (s *server) gopsProfile(ctx context.Context, g gopsTarget, typ triagev1.ProfileType, out sink) error {
	switch typ {
	case triagev1.ProfileType_PROFILE_TYPE_HEAP:
		return s.fromGops(ctx, out, "application/vnd.google.protobuf+gzip", "heap.pb.gz", func(w io.Writer) (int64, error) { return g.HeapProfile(ctx, w) })
	case triagev1.ProfileType_PROFILE_TYPE_CPU:
		return s.fromGops(ctx, out, "application/vnd.google.protobuf+gzip", "cpu.pb.gz", func(w io.Writer) (int64, error) { return g.CPUProfile(ctx, w) })
	case triagev1.ProfileType_PROFILE_TYPE_TRACE:
		return s.fromGops(ctx, out, "application/octet-stream", "trace.out", func(w io.Writer) (int64, error) { return g.Trace(ctx, w) })
	}
	return needsAgent(fmt.Sprintf("a %s profile", typeName(typ)))
}

// gopsStats serves what gops tells about the runtime.
func (s *server) gopsStats(ctx context.Context, g gopsTarget) (*triagev1.GetRuntimeStatsResponse, error) {
	v, err := g.Version(ctx)
	if err != nil {
		return nil, gopsErr(s.o.GopsAddr, "version", err)
	}
	out := &triagev1.GetRuntimeStatsResponse{Source: "gops", GoVersion: v, Metrics: map[string]float64{}}
	out.Unavailable = append(out.Unavailable, &triagev1.Unavailable{Field: "metrics",
		Reason: "gops has no runtime/metrics (GC pauses, scheduling latency, GC CPU): link the triage agent"})
	return out, nil
}

// gopsByPID finds a gops agent through its port file on every call (the app
// may restart, or start its agent after the sidecar): the port file lives in
// the app's gops config directory, reachable through /proc/PID/root when the
// pod shares its PID namespace.
type gopsByPID struct {
	pid      int
	procRoot string
	maxBytes int64
}

func (g gopsByPID) client() (*gops.Client, error) {
	addr, err := gops.FindAddr(g.pid, g.procRoot)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "no gops agent found for pid %d: %v (set --gops-addr, or check that the pod shares its PID namespace)", g.pid, err)
	}
	return &gops.Client{Addr: addr, MaxBytes: g.maxBytes}, nil
}

func (g gopsByPID) Stack(ctx context.Context, w io.Writer) (int64, error) {
	c, err := g.client()
	if err != nil {
		return 0, err
	}
	return c.Stack(ctx, w)
}

func (g gopsByPID) Version(ctx context.Context) (string, error) {
	c, err := g.client()
	if err != nil {
		return "", err
	}
	return c.Version(ctx)
}

func (g gopsByPID) MemStats(ctx context.Context) (string, error) {
	c, err := g.client()
	if err != nil {
		return "", err
	}
	return c.MemStats(ctx)
}

func (g gopsByPID) HeapProfile(ctx context.Context, w io.Writer) (int64, error) {
	c, err := g.client()
	if err != nil {
		return 0, err
	}
	return c.HeapProfile(ctx, w)
}

func (g gopsByPID) CPUProfile(ctx context.Context, w io.Writer) (int64, error) {
	c, err := g.client()
	if err != nil {
		return 0, err
	}
	return c.CPUProfile(ctx, w)
}

func (g gopsByPID) Trace(ctx context.Context, w io.Writer) (int64, error) {
	c, err := g.client()
	if err != nil {
		return 0, err
	}
	return c.Trace(ctx, w)
}
