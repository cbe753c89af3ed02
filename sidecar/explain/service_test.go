package explain

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

type fakeInfo struct{ certs []*triagev1.Certificate }

func (fakeInfo) Build() *triagev1.Build { return &triagev1.Build{Version: "v9.9.9"} }
func (fakeInfo) Settings() []*triagev1.Setting {
	return []*triagev1.Setting{{Name: "addr", Value: "127.0.0.1:7070", Source: triagev1.Source_SOURCE_FLAG, Origin: "--addr"}}
}
func (fakeInfo) Auth(context.Context) *triagev1.Auth {
	return &triagev1.Auth{Modes: []string{"mtls"}, Caller: &triagev1.Identity{Name: "me"}}
}
func (fakeInfo) Capabilities() []*triagev1.Capability {
	return []*triagev1.Capability{{Name: "capture", Reason: "CAP_NET_RAW missing", Fix: "add it"}}
}
func (f fakeInfo) Certificates() []*triagev1.Certificate { return f.certs }
func (fakeInfo) Contributors() []capability.Contributor {
	return []capability.Contributor{func(_ context.Context, r *triagev1.ExplainResponse) {
		r.App = &triagev1.App{Source: "agent", Reachable: true}
		r.Findings = append(r.Findings, &triagev1.Finding{Severity: triagev1.Severity_SEVERITY_CRITICAL, Code: "contributed"})
	}}
}

func TestExplainService(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	info := fakeInfo{certs: []*triagev1.Certificate{{Role: "server", Subject: "CN=sidecar", NotAfter: timestamppb.New(time.Now().Add(48 * time.Hour))}}}
	if _, err := Register(s, capability.Deps{ProcRoot: "/proc", CgroupRoot: "/sys/fs/cgroup", Server: info}); err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	defer s.Stop()
	conn, err := grpc.NewClient("passthrough:///buf", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := triagev1.NewExplainServiceClient(conn).Explain(ctx, &triagev1.ExplainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Build.Version != "v9.9.9" || resp.Auth.Caller.Name != "me" || len(resp.Settings) != 1 || resp.Capabilities[0].Fix != "add it" {
		t.Fatalf("server info not passed through: %v", resp)
	}
	var self bool
	for _, p := range resp.Processes {
		if p.Self && int(p.Pid) == os.Getpid() {
			self = true
		}
	}
	if !self {
		t.Fatalf("the sidecar's own process is not listed")
	}
	if resp.App.GetSource() != "agent" || resp.Findings[0].Code != "contributed" {
		t.Fatalf("contributions not applied and sorted first: app=%v findings=%v", resp.App, resp.Findings)
	}
	var certFinding bool
	for _, f := range resp.Findings {
		if f.Code == "cert-expiring" && f.Severity == triagev1.Severity_SEVERITY_WARNING {
			certFinding = true
		}
	}
	if !certFinding {
		t.Fatalf("no cert-expiring finding for a certificate expiring in 2 days: %v", resp.Findings)
	}
	v, err := triagev1.NewExplainServiceClient(conn).GetVersion(ctx, &triagev1.GetVersionRequest{})
	if err != nil || v.Build.Version != "v9.9.9" {
		t.Fatalf("GetVersion: %v %v", v, err)
	}
}
