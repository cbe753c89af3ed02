package client_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// scriptedRuntime replays scripted goroutine streams and a profile.
type scriptedRuntime struct {
	triagev1.UnimplementedRuntimeServiceServer
	goroutines []*triagev1.GetGoroutinesResponse
	err        error
	profile    *triagev1.ProfileRequest // the last request
}

func (s *scriptedRuntime) GetGoroutines(_ *triagev1.GetGoroutinesRequest, st grpc.ServerStreamingServer[triagev1.GetGoroutinesResponse]) error {
	for _, m := range s.goroutines {
		if err := st.Send(m); err != nil {
			return err
		}
	}
	return s.err
}

func (s *scriptedRuntime) Profile(req *triagev1.ProfileRequest, st grpc.ServerStreamingServer[triagev1.ProfileResponse]) error {
	s.profile = req
	st.Send(&triagev1.ProfileResponse{Part: &triagev1.ProfileResponse_Header{Header: &triagev1.ArtifactHeader{FileName: "cpu.pprof"}}})
	for _, c := range []string{"ab", "cde"} {
		st.Send(&triagev1.ProfileResponse{Part: &triagev1.ProfileResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: []byte(c)}}})
	}
	return st.Send(&triagev1.ProfileResponse{Part: &triagev1.ProfileResponse_Trailer{Trailer: &triagev1.ArtifactTrailer{Bytes: 5, Notes: []string{"cheap"}}}})
}

func (s *scriptedRuntime) GetRuntimeStats(context.Context, *triagev1.GetRuntimeStatsRequest) (*triagev1.GetRuntimeStatsResponse, error) {
	return nil, status.Error(codes.FailedPrecondition, "no agent: set --agent-socket")
}

// serveRuntime serves s in plaintext on loopback and returns a client.
func serveRuntime(t *testing.T, s *scriptedRuntime) *client.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	triagev1.RegisterRuntimeServiceServer(srv, s)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return dial(t, client.Options{Addr: l.Addr().String(), Insecure: true})
}

func summary(groups int64) *triagev1.GetGoroutinesResponse {
	return &triagev1.GetGoroutinesResponse{Part: &triagev1.GetGoroutinesResponse_Summary{Summary: &triagev1.GoroutineSummary{Total: 5, Groups: groups, Source: "self"}}}
}

func group(n int64) *triagev1.GetGoroutinesResponse {
	return &triagev1.GetGoroutinesResponse{Part: &triagev1.GetGoroutinesResponse_Group{Group: &triagev1.GoroutineGroup{Count: n, State: "select"}}}
}

func TestGoroutines(t *testing.T) {
	tests := []struct {
		name     string
		msgs     []*triagev1.GetGoroutinesResponse
		err      error
		groups   int
		wantErr  error
		wantCode codes.Code
	}{
		{"summary then groups", []*triagev1.GetGoroutinesResponse{summary(2), group(3), group(2)}, nil, 2, nil, codes.OK},
		{"summary only", []*triagev1.GetGoroutinesResponse{summary(0)}, nil, 0, nil, codes.OK},
		{"group first", []*triagev1.GetGoroutinesResponse{group(3), summary(1)}, nil, 0, client.ErrGoroutineStream, codes.Unknown},
		{"two summaries", []*triagev1.GetGoroutinesResponse{summary(1), summary(1)}, nil, 0, client.ErrGoroutineStream, codes.Unknown},
		{"no summary", nil, nil, 0, client.ErrGoroutineStream, codes.Unknown},
		{"empty message", []*triagev1.GetGoroutinesResponse{summary(1), {}}, nil, 0, client.ErrGoroutineStream, codes.Unknown},
		{"server error midway keeps its code", []*triagev1.GetGoroutinesResponse{summary(2), group(1)}, status.Error(codes.ResourceExhausted, "too many groups"), 1, nil, codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serveRuntime(t, &scriptedRuntime{goroutines: tt.msgs, err: tt.err})
			sum, groups, err := c.Goroutines(testContext(t), &triagev1.GetGoroutinesRequest{})
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("code = %v (%v), want %v", got, err, tt.wantCode)
			}
			var ce *client.Error
			if err != nil && (!errors.As(err, &ce) || ce.Op != "get goroutines") {
				t.Errorf("error %v is not a *client.Error for get goroutines", err)
			}
			if err == nil && (sum.GetTotal() != 5 || sum.GetSource() != "self") {
				t.Errorf("summary = %v", sum)
			}
			if len(groups) != tt.groups {
				t.Errorf("%d groups, want %d", len(groups), tt.groups)
			}
		})
	}
}

func TestProfileProgressAndStats(t *testing.T) {
	s := &scriptedRuntime{}
	c := serveRuntime(t, s)
	var buf bytes.Buffer
	var seen []int64
	req := &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_CPU, Duration: durationpb.New(1)}
	a, err := c.Profile(testContext(t), req, &buf, client.OnProgress(func(n int64) { seen = append(seen, n) }))
	if err != nil {
		t.Fatalf("Profile: %s", client.Describe(err))
	}
	if buf.String() != "abcde" || a.Written != 5 || a.Header.GetFileName() != "cpu.pprof" || a.Trailer.GetNotes()[0] != "cheap" {
		t.Errorf("artifact %v, bytes %q", a, buf.String())
	}
	if len(seen) != 2 || seen[0] != 2 || seen[1] != 5 {
		t.Errorf("progress = %v, want [2 5]", seen)
	}
	if s.profile.GetType() != triagev1.ProfileType_PROFILE_TYPE_CPU {
		t.Errorf("request = %v", s.profile)
	}

	_, err = c.RuntimeStats(testContext(t), triagev1.Target_TARGET_APP)
	if status.Code(err) != codes.FailedPrecondition || client.Describe(err) != "get runtime stats: FailedPrecondition: no agent: set --agent-socket" {
		t.Errorf("RuntimeStats error = %q", client.Describe(err))
	}
}
