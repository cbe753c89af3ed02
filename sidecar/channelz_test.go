package sidecar

import (
	"testing"

	channelzpb "google.golang.org/grpc/channelz/grpc_channelz_v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// TestExternalPermissions: every service triage serves without a .proto of
// its own has a row in externalPermissions, so the server starts, and only
// health is open.
func TestExternalPermissions(t *testing.T) {
	want := map[string]triagev1.Permission{
		"grpc.health.v1.Health":                    open,
		"grpc.reflection.v1.ServerReflection":      triagev1.Permission_PERMISSION_VIEW,
		"grpc.reflection.v1alpha.ServerReflection": triagev1.Permission_PERMISSION_VIEW,
		"grpc.channelz.v1.Channelz":                triagev1.Permission_PERMISSION_VIEW,
	}
	for svc, p := range want {
		if got, ok := externalPermissions[svc]; !ok || got != p {
			t.Errorf("externalPermissions[%s] = %v, %v; want %v", svc, got, ok, permissionName(p))
		}
	}
	for svc, p := range externalPermissions {
		if _, ok := want[svc]; !ok {
			t.Errorf("externalPermissions has %s (%s) that this test does not know: add it here on purpose", svc, permissionName(p))
		}
	}
}

// TestChannelz: a viewer reads the sidecar's own channelz (its server, and
// the viewer's own connection among its sockets); without credentials it
// is Unauthenticated, with no role PermissionDenied.
func TestChannelz(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	ctx := testCtx(t)
	viewer := channelzpb.NewChannelzClient(dial(t, s.addr, p.clientTLS(t, idViewer, nil, auth.IssueOptions{}), ""))
	resp, err := viewer.GetServers(ctx, &channelzpb.GetServersRequest{})
	if err != nil {
		t.Fatalf("viewer GetServers: %v", err)
	}
	if len(resp.GetServer()) == 0 {
		t.Fatal("channelz lists no server")
	}
	var calls int64
	for _, srv := range resp.GetServer() {
		calls += srv.GetData().GetCallsStarted()
		if len(srv.GetListenSocket()) == 0 {
			t.Errorf("server %d has no listen socket", srv.GetRef().GetServerId())
		}
	}
	if calls < 1 {
		t.Errorf("channelz counted %d calls started; the viewer's own call is one", calls)
	}
	for name, tlsID := range map[string]string{"anonymous": "", "nobody": idNoRole} {
		conn := channelzpb.NewChannelzClient(dial(t, s.addr, p.clientTLS(t, tlsID, nil, auth.IssueOptions{}), ""))
		_, err := conn.GetTopChannels(ctx, &channelzpb.GetTopChannelsRequest{})
		want := codes.Unauthenticated
		if tlsID != "" {
			want = codes.PermissionDenied
		}
		if status.Code(err) != want {
			t.Errorf("%s GetTopChannels: %v, want %v", name, err, want)
		}
	}
	if s.srv.grpc.GetServiceInfo()["grpc.channelz.v1.Channelz"].Methods == nil {
		t.Error("channelz is not registered")
	}
}
