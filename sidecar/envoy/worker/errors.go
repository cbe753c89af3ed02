package worker

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/internal/envoyadmin"
)

// grpcError is the one place this capability chooses gRPC codes for what
// the admin client returns. Messages name the admin URL (the client's
// errors do) and say what to do next.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "call cancelled")
	}
	var e *envoyadmin.Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.DeadlineExceeded) {
			return status.Error(codes.DeadlineExceeded, "envoy admin did not answer in time")
		}
		return err // uncoded: the guard makes it Internal and audits the detail
	}
	msg := "envoy admin: " + e.Error()
	switch e.Kind {
	case envoyadmin.KindUnavailable:
		return status.Error(codes.Unavailable, msg)
	case envoyadmin.KindTimeout:
		return status.Error(codes.DeadlineExceeded, msg+" (the sidecar waits --envoy-timeout)")
	case envoyadmin.KindTooLarge:
		return status.Error(codes.ResourceExhausted, msg+" (the sidecar's limit is --envoy-max-response-bytes)")
	case envoyadmin.KindNotFound:
		return status.Error(codes.NotFound, msg)
	case envoyadmin.KindStatus:
		if e.StatusCode >= 400 && e.StatusCode < 500 {
			return status.Error(codes.FailedPrecondition, msg)
		}
		return status.Error(codes.Unavailable, msg)
	case envoyadmin.KindDecode:
		// Something answers, but not as Envoy's admin does.
		return status.Error(codes.Unavailable, msg+"; check that --envoy-admin points at Envoy's admin port, not a listener")
	case envoyadmin.KindUnsupported, envoyadmin.KindDisabled:
		return status.Error(codes.FailedPrecondition, msg)
	case envoyadmin.KindInvalidArgument:
		return status.Error(codes.InvalidArgument, msg)
	}
	return status.Error(codes.Unavailable, msg)
}
