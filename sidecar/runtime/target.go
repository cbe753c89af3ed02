package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// agentTarget is a process reached through the triage agent's API: the app
// over its Unix socket, or the sidecar itself over an in-memory listener.
type agentTarget struct {
	// source is "agent" (the app) or "self".
	source string
	// address names it in messages: "unix:///path" or "in-process".
	address string
	conn    *grpc.ClientConn
	client  agentv1.AgentServiceClient
}

// target is what a request resolved to: an agent, or a gops agent.
type target struct {
	agent *agentTarget
	gops  gopsTarget
}

func (t target) source() string {
	if t.agent != nil {
		return t.agent.source
	}
	return "gops"
}

// dialAgent connects lazily to an agent at a Unix socket.
func dialAgent(socket string) (*agentTarget, error) {
	// unix://PATH must be absolute, or gRPC reads the first element as an authority.
	abs, err := filepath.Abs(socket)
	if err != nil {
		return nil, fmt.Errorf("agent socket %s: %w", socket, err)
	}
	socket = abs
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4<<20)))
	if err != nil {
		return nil, fmt.Errorf("agent socket %s: %w", socket, err)
	}
	return &agentTarget{source: "agent", address: "unix://" + socket, conn: conn, client: agentv1.NewAgentServiceClient(conn)}, nil
}

// dialInProcess connects to the sidecar's own agent over an in-memory listener.
func dialInProcess(dial func(context.Context) (net.Conn, error)) (*agentTarget, error) {
	conn, err := grpc.NewClient("passthrough:///self",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4<<20)))
	if err != nil {
		return nil, fmt.Errorf("in-process agent: %w", err)
	}
	return &agentTarget{source: "self", address: "in-process", conn: conn, client: agentv1.NewAgentServiceClient(conn)}, nil
}

// resolve picks the process a request is about.
func (s *server) resolve(t triagev1.Target) (target, error) {
	switch t {
	case triagev1.Target_TARGET_SELF:
		return target{agent: s.self}, nil
	case triagev1.Target_TARGET_APP, triagev1.Target_TARGET_UNSPECIFIED:
		switch {
		case s.app != nil:
			return target{agent: s.app}, nil
		case s.gops != nil:
			return target{gops: s.gops}, nil
		case t == triagev1.Target_TARGET_UNSPECIFIED:
			return target{agent: s.self}, nil
		}
		return target{}, status.Error(codes.FailedPrecondition,
			"no app target is configured: start the sidecar with --agent-socket PATH (the app links github.com/triage-sh/triage/sidecar/agent) or --gops-addr HOST:PORT; --target self inspects the sidecar itself")
	}
	return target{}, status.Errorf(codes.InvalidArgument, "unknown target %v: use app or self", t)
}

// agentErr turns an error from an agent call into the status the caller
// sees: an unreachable agent is Unavailable naming the socket; the agent's
// own verdicts (busy, bad duration, flight recorder off) pass through.
func agentErr(t *agentTarget, what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
		return status.Error(codes.Canceled, what+": cancelled")
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s from %s: %w", what, t.address, err)
	}
	switch st.Code() {
	case codes.Unavailable:
		return status.Errorf(codes.Unavailable,
			"%s: the triage agent at %s did not answer (%s): is the app running, with agent.Start in main? the sidecar keeps serving its other capabilities",
			what, t.address, st.Message())
	case codes.Unimplemented:
		return status.Errorf(codes.FailedPrecondition, "%s: the agent at %s is too old for this call (%s): upgrade the app's triage agent", what, t.address, st.Message())
	}
	return status.Errorf(st.Code(), "%s: agent: %s", what, st.Message())
}

// holder names the caller for the agent's "profile busy" message.
func holder(ctx context.Context) string {
	if id, ok := capability.IdentityFrom(ctx); ok {
		return id.Name
	}
	return "unknown"
}
