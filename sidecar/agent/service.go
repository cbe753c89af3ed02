package agent

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// service is the thin gRPC layer over the engines; the agent's status codes
// are chosen here and in the engines' validation.
type service struct {
	agentv1.UnimplementedAgentServiceServer
	a *Agent
}

func (s *service) GetInfo(context.Context, *agentv1.GetInfoRequest) (*agentv1.GetInfoResponse, error) {
	return s.a.info(), nil
}

func (s *service) GetRuntimeStats(context.Context, *agentv1.GetRuntimeStatsRequest) (*agentv1.GetRuntimeStatsResponse, error) {
	return runtimeStats(), nil
}

func (s *service) GetRegistered(ctx context.Context, _ *agentv1.GetRegisteredRequest) (*agentv1.GetRegisteredResponse, error) {
	return s.a.registry.snapshot(ctx), nil
}

func (s *service) GetGoroutines(req *agentv1.GetGoroutinesRequest, stream agentv1.AgentService_GetGoroutinesServer) error {
	return s.a.goroutines(stream.Context(), req, goroutinesSender(stream))
}

func (s *service) Profile(req *agentv1.ProfileRequest, stream agentv1.AgentService_ProfileServer) error {
	return s.a.profile(stream.Context(), req, profileSender(stream))
}

// toStatus gives an engine error a status: coded errors keep their code, a
// cancelled or expired client keeps that, anything else is Internal.
func toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, "agent: "+err.Error())
}

// recoverUnary turns a panic in a unary handler into Internal: the app keeps running.
func (a *Agent) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer a.recoverTo(info.FullMethod, &err)
	return h(ctx, req)
}

// recoverStream turns a panic in a streaming handler into Internal.
func (a *Agent) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer a.recoverTo(info.FullMethod, &err)
	return h(srv, ss)
}

func (a *Agent) recoverTo(method string, err *error) {
	if r := recover(); r != nil {
		a.log.Error("triage agent: recovered panic", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "agent: internal error in %s (recovered; the app keeps running)", method)
	}
}

// goSafe runs f on a new goroutine, recovering a panic into done's error.
func goSafe(f func() error) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("recovered panic: %v", r)
			}
			done <- err
		}()
		err = f()
	}()
	return done
}
