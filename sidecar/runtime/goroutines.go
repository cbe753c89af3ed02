package runtime

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/google/pprof/profile"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/goroutines"
	"github.com/triage-sh/triage/internal/goroutines/goroutinespb"
	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// GetGoroutines collects a dump by the requested path, groups it, and
// streams a summary followed by the groups, largest first.
func (s *server) GetGoroutines(req *triagev1.GetGoroutinesRequest, stream grpc.ServerStreamingServer[triagev1.GetGoroutinesResponse]) error {
	opts := goroutines.GroupOptions{}
	if f := req.GetFilter(); f != "" {
		re, err := regexp.Compile(f)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "filter %q is not a valid RE2 regexp: %v", f, err)
		}
		opts.Filter = re
	}
	if mw := req.GetMinWait(); mw != nil {
		if err := mw.CheckValid(); err != nil || mw.AsDuration() < 0 {
			return status.Errorf(codes.InvalidArgument, "min_wait must be a non-negative duration, got %v", mw)
		}
		opts.MinWait = mw.AsDuration()
	}
	t, err := s.resolve(req.GetTarget())
	if err != nil {
		return err
	}
	path, notes, err := choosePath(req.GetPath(), opts.MinWait, t)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	start := time.Now()
	dump, pid, more, err := s.dump(ctx, t, path)
	if err != nil {
		return err
	}
	notes = append(notes, more...)
	groups := dump.Group(opts)
	var matched int64
	for _, g := range groups {
		matched += int64(g.Count)
	}
	summary := &triagev1.GoroutineSummary{
		Total: int64(dump.Total), Groups: int64(len(groups)), Matched: matched, Path: path, Source: t.source(), Pid: pid,
		Collected: durationpb.New(time.Since(start)), Time: timestamppb.New(start), Notes: notes,
	}
	if err := stream.Send(&triagev1.GetGoroutinesResponse{Part: &triagev1.GetGoroutinesResponse_Summary{Summary: summary}}); err != nil {
		return err
	}
	for _, g := range groups {
		if err := stream.Send(&triagev1.GetGoroutinesResponse{Part: &triagev1.GetGoroutinesResponse_Group{Group: goroutinespb.Group(g)}}); err != nil {
			return err
		}
	}
	return nil
}

// choosePath settles the collection path. The default is the goroutine
// profile, which never stops the world for long; wait times need the text
// path, and gops has only the text path.
func choosePath(asked triagev1.GoroutinePath, minWait time.Duration, t target) (triagev1.GoroutinePath, []string, error) {
	var notes []string
	path := asked
	if path == triagev1.GoroutinePath_GOROUTINE_PATH_UNSPECIFIED {
		path = triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE
		if minWait > 0 {
			path = triagev1.GoroutinePath_GOROUTINE_PATH_TEXT
			notes = append(notes, "min_wait needs wait times, which only the text dump has: used the text path (it stops the world while it runs)")
		}
	}
	if minWait > 0 && path == triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE {
		return 0, nil, status.Error(codes.InvalidArgument, "min_wait needs wait times, which the profile path does not have: ask for the text path or drop min_wait")
	}
	if t.gops != nil && path == triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE {
		path = triagev1.GoroutinePath_GOROUTINE_PATH_TEXT
		notes = append(notes, "gops offers only the text dump (stack): used the text path; link the triage agent for the non-blocking profile path")
	}
	if path == triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE {
		notes = append(notes, "profile path: stacks and counts collected concurrently (sub-millisecond pauses); no wait states or times (ask for the text path for those)")
	}
	return path, notes, nil
}

// dump collects and parses a goroutine dump from t.
func (s *server) dump(ctx context.Context, t target, path triagev1.GoroutinePath) (*goroutines.Dump, int32, []string, error) {
	if t.gops != nil {
		d, err := parseStreamed(func(w io.Writer) error { _, err := t.gops.Stack(ctx, w); return err })
		if err != nil {
			return nil, 0, nil, gopsErr(s.o.GopsAddr, "goroutine dump", err)
		}
		return d, 0, nil, nil
	}
	a := t.agent
	format := agentv1.GoroutineFormat_GOROUTINE_FORMAT_PROFILE
	if path == triagev1.GoroutinePath_GOROUTINE_PATH_TEXT {
		format = agentv1.GoroutineFormat_GOROUTINE_FORMAT_TEXT
	}
	st, err := a.client.GetGoroutines(ctx, &agentv1.GetGoroutinesRequest{Format: format})
	if err != nil {
		return nil, 0, nil, agentErr(a, "goroutine dump", err)
	}
	var notes []string
	pid := a.pid(ctx)
	var trailer *agentv1.Trailer
	var d *goroutines.Dump
	if format == agentv1.GoroutineFormat_GOROUTINE_FORMAT_TEXT {
		d, err = parseStreamed(func(w io.Writer) error {
			var cerr error
			_, trailer, cerr = collect(st.Recv, w, s.o.MaxDumpBytes)
			return cerr
		})
	} else {
		var buf bytes.Buffer
		if _, trailer, err = collect(st.Recv, &buf, s.o.MaxDumpBytes); err == nil {
			d, err = fromProfile(buf.Bytes())
		}
	}
	if err != nil {
		if _, ok := err.(errTooLarge); ok {
			return nil, 0, nil, status.Error(codes.ResourceExhausted, err.Error()+": raise it, or use the profile path, which groups in the app")
		}
		if status.Code(err) != codes.Unknown {
			return nil, 0, nil, agentErr(a, "goroutine dump", err)
		}
		return nil, 0, nil, fmt.Errorf("goroutine dump from %s: %w", a.address, err)
	}
	if trailer != nil {
		notes = append(notes, trailer.Notes...)
		if ns := trailer.Counters["stop_the_world_ns"]; ns > 0 {
			notes = append(notes, fmt.Sprintf("the text dump stopped the world for about %v", time.Duration(ns).Round(time.Microsecond)))
		}
	}
	return d, pid, notes, nil
}

// parseStreamed parses a text dump while produce writes it, without holding it whole.
func parseStreamed(produce func(io.Writer) error) (*goroutines.Dump, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(produce(pw)) }()
	d, err := goroutines.Parse(pr)
	pr.CloseWithError(io.ErrClosedPipe) // unblock the producer if the parser stopped early
	return d, err
}

// fromProfile turns a goroutine profile (pprof debug=0) into a Dump: one
// record per distinct stack, with its count and labels, and no state.
func fromProfile(data []byte) (*goroutines.Dump, error) {
	p, err := profile.ParseData(data)
	if err != nil {
		return nil, fmt.Errorf("parse goroutine profile: %w", err)
	}
	d := &goroutines.Dump{Format: "profile"}
	for _, smp := range p.Sample {
		if len(smp.Value) == 0 || smp.Value[0] <= 0 {
			continue
		}
		g := &goroutines.Goroutine{Count: int(smp.Value[0])}
		for _, loc := range smp.Location {
			for _, ln := range loc.Line { // inlined calls first, the caller last
				f := goroutines.Frame{Line: int(ln.Line), PC: loc.Address}
				if ln.Function != nil {
					f.Function, f.File = ln.Function.Name, ln.Function.Filename
				}
				g.Frames = append(g.Frames, f)
			}
		}
		if len(smp.Label) > 0 {
			g.Labels = map[string]string{}
			for k, v := range smp.Label {
				if len(v) > 0 {
					g.Labels[k] = v[0]
				}
			}
		}
		d.Goroutines = append(d.Goroutines, g)
		d.Total += g.Count
	}
	return d, nil
}

// GetGoroutineDump streams the raw text dump.
func (s *server) GetGoroutineDump(req *triagev1.GetGoroutineDumpRequest, stream grpc.ServerStreamingServer[triagev1.GetGoroutineDumpResponse]) error {
	t, err := s.resolve(req.GetTarget())
	if err != nil {
		return err
	}
	out := sink{
		header: func(h *triagev1.ArtifactHeader) error {
			return stream.Send(&triagev1.GetGoroutineDumpResponse{Part: &triagev1.GetGoroutineDumpResponse_Header{Header: h}})
		},
		chunk: func(b []byte) error {
			return stream.Send(&triagev1.GetGoroutineDumpResponse{Part: &triagev1.GetGoroutineDumpResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: b}}})
		},
		trailer: func(tr *triagev1.ArtifactTrailer) error {
			return stream.Send(&triagev1.GetGoroutineDumpResponse{Part: &triagev1.GetGoroutineDumpResponse_Trailer{Trailer: tr}})
		},
	}
	ctx := stream.Context()
	if t.gops != nil {
		return s.fromGops(ctx, out, "text/plain; goroutine dump (gops stack)", "goroutines.txt",
			func(w io.Writer) (int64, error) { return t.gops.Stack(ctx, w) })
	}
	a := t.agent
	st, err := a.client.GetGoroutines(ctx, &agentv1.GetGoroutinesRequest{Format: agentv1.GoroutineFormat_GOROUTINE_FORMAT_TEXT})
	if err != nil {
		return agentErr(a, "goroutine dump", err)
	}
	if _, err := relay(st.Recv, out, s.o.MaxDumpBytes); err != nil {
		if e, ok := err.(errTooLarge); ok {
			return status.Error(codes.ResourceExhausted, e.Error())
		}
		return agentErr(a, "goroutine dump", err)
	}
	return nil
}
