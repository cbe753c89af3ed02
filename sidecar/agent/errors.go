package agent

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func invalidArgf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func failedPreconditionf(format string, args ...any) error {
	return status.Errorf(codes.FailedPrecondition, format, args...)
}

func exhaustedf(format string, args ...any) error {
	return status.Errorf(codes.ResourceExhausted, format, args...)
}
