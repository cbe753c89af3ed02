package sidecar

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-sh/triage/internal/auth"
	"github.com/triage-sh/triage/internal/version"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func versionBuild() *triagev1.Build { return version.Build() }

func certProto(c auth.CertInfo) *triagev1.Certificate {
	return &triagev1.Certificate{
		Role:      c.Role,
		Path:      c.Path,
		Subject:   c.Subject,
		Issuer:    c.Issuer,
		Sans:      c.SANs,
		NotBefore: timestamppb.New(c.NotBefore),
		NotAfter:  timestamppb.New(c.NotAfter),
		Serial:    c.Serial,
	}
}
