package runtime

import (
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// timed profiles sample for a duration; the others are snapshots.
var timed = map[triagev1.ProfileType]bool{
	triagev1.ProfileType_PROFILE_TYPE_WALL:  true,
	triagev1.ProfileType_PROFILE_TYPE_CPU:   true,
	triagev1.ProfileType_PROFILE_TYPE_BLOCK: true,
	triagev1.ProfileType_PROFILE_TYPE_MUTEX: true,
	triagev1.ProfileType_PROFILE_TYPE_TRACE: true,
}

// defaultDuration is used when a timed profile names none.
const defaultDuration = 10 * time.Second

// Profile validates the request against the server's limits and streams the
// profile from the target.
func (s *server) Profile(req *triagev1.ProfileRequest, stream grpc.ServerStreamingServer[triagev1.ProfileResponse]) error {
	typ := req.GetType()
	if typ == triagev1.ProfileType_PROFILE_TYPE_UNSPECIFIED || triagev1.ProfileType_name[int32(typ)] == "" {
		return status.Error(codes.InvalidArgument, "profile type missing: use wall, cpu, heap, allocs, block, mutex, goroutine, threadcreate or trace")
	}
	d := defaultDuration
	if req.GetDuration() != nil {
		d = req.GetDuration().AsDuration()
	}
	if timed[typ] && !req.GetLast() && (d <= 0 || d > s.o.MaxProfileDuration) {
		return status.Errorf(codes.InvalidArgument, "duration %v is out of range: allowed (0s, %v] (--max-profile-duration)", d, s.o.MaxProfileDuration)
	}
	if req.GetLast() && typ != triagev1.ProfileType_PROFILE_TYPE_TRACE {
		return status.Error(codes.InvalidArgument, "last applies to execution traces only (the flight recorder): use --type trace")
	}
	if req.GetRate() < 0 {
		return status.Errorf(codes.InvalidArgument, "rate must not be negative, got %d", req.GetRate())
	}
	t, err := s.resolve(req.GetTarget())
	if err != nil {
		return err
	}
	out := sink{
		header: func(h *triagev1.ArtifactHeader) error {
			return stream.Send(&triagev1.ProfileResponse{Part: &triagev1.ProfileResponse_Header{Header: h}})
		},
		chunk: func(b []byte) error {
			return stream.Send(&triagev1.ProfileResponse{Part: &triagev1.ProfileResponse_Chunk{Chunk: &triagev1.ArtifactChunk{Data: b}}})
		},
		trailer: func(tr *triagev1.ArtifactTrailer) error {
			return stream.Send(&triagev1.ProfileResponse{Part: &triagev1.ProfileResponse_Trailer{Trailer: tr}})
		},
	}
	ctx := stream.Context()
	if t.gops != nil {
		return s.gopsProfile(ctx, t.gops, typ, out)
	}
	a := t.agent
	st, err := a.client.Profile(ctx, &agentv1.ProfileRequest{
		Type: agentv1.ProfileType(typ), Duration: durationpb.New(d), Last: req.GetLast(), Rate: req.GetRate(), Holder: holder(ctx),
	})
	if err != nil {
		return agentErr(a, typeName(typ)+" profile", err)
	}
	if _, err := relay(st.Recv, out, s.o.MaxDumpBytes); err != nil {
		if e, ok := err.(errTooLarge); ok {
			return status.Error(codes.ResourceExhausted, e.Error())
		}
		return agentErr(a, typeName(typ)+" profile", err)
	}
	return nil
}

func typeName(t triagev1.ProfileType) string {
	n := triagev1.ProfileType_name[int32(t)]
	if len(n) > len("PROFILE_TYPE_") {
		n = n[len("PROFILE_TYPE_"):]
	}
	return strings.ToLower(n)
}
