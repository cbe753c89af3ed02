package sidecar

import (
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/internal/auth"
	"github.com/triage-sh/triage/sidecar/capability"
	"github.com/triage-sh/triage/sidecar/envoy"
	"github.com/triage-sh/triage/sidecar/envoy/envoytest"
)

// TestEnvoyMethodsGuarded walks every EnvoyService method with the
// capability on (its Envoy down): no credentials is Unauthenticated, no
// role PermissionDenied, and the operator passes the guard.
func TestEnvoyMethodsGuarded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	o := envoy.DefaultOptions()
	o.AdminURL = url
	o.WorkerPath = envoytest.Worker(t)
	row := capability.Capability{Name: "envoy-test", Register: func(s grpc.ServiceRegistrar, d capability.Deps) (func(), error) { return envoy.Register(s, d, o) }}
	p := newPKI(t)
	s := startServer(t, p, nil, row)
	ctx := testCtx(t)
	anon := dial(t, s.addr, p.clientTLS(t, "", nil, auth.IssueOptions{}), "")
	nobody := dial(t, s.addr, p.clientTLS(t, idNoRole, nil, auth.IssueOptions{}), "")
	operator := dial(t, s.addr, p.clientTLS(t, idOperator, nil, auth.IssueOptions{}), "")
	const svc = "triage.v1.EnvoyService"
	info, ok := s.srv.grpc.GetServiceInfo()[svc]
	if !ok {
		t.Fatalf("%s is not registered", svc)
	}
	if len(info.Methods) < 17 {
		t.Errorf("EnvoyService has %d methods", len(info.Methods))
	}
	for _, m := range info.Methods {
		if c := status.Code(callAny(ctx, anon, svc, m)); c != codes.Unauthenticated {
			t.Errorf("%s without credentials: %v", m.Name, c)
		}
		if c := status.Code(callAny(ctx, nobody, svc, m)); c != codes.PermissionDenied {
			t.Errorf("%s with no role: %v", m.Name, c)
		}
		if c := status.Code(callAny(ctx, operator, svc, m)); c == codes.Unauthenticated || c == codes.PermissionDenied || c == codes.Internal || c == codes.Unknown {
			t.Errorf("%s as operator with Envoy down: %v, want a coded answer past the guard", m.Name, c)
		}
	}
}
