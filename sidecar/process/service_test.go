package process

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// serve starts a gRPC server with the capability registered from deps on an
// in-memory listener and returns a client; both stop when the test ends.
func serve(t *testing.T, deps capability.Deps) triagev1.ProcessServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	cleanup, err := Capability().Register(srv, deps)
	if err != nil {
		t.Fatal(err)
	}
	if cleanup != nil {
		t.Cleanup(cleanup)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return triagev1.NewProcessServiceClient(conn)
}

// testContext is a context that ends with the test, or after 30 s.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCapabilityName(t *testing.T) {
	if got := Capability().Name; got != "process" {
		t.Errorf("Name = %q, want process", got)
	}
}

func TestGetProcessCodes(t *testing.T) {
	proc, cg := fakeRoots(t)
	client := serve(t, capability.Deps{ProcRoot: proc, CgroupRoot: cg})
	tests := []struct {
		name    string
		pid     int32
		code    codes.Code
		message string
	}{
		{"unknown pid", 4242, codes.NotFound, "pid 4242 not found: the sidecar sees only its own PID namespace; list visible processes with `triage proc`"},
		{"negative pid", -3, codes.InvalidArgument, "pid -3 is negative"},
		{"self", 0, codes.OK, ""},
		{"by pid", 1234, codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.GetProcess(testContext(t), &triagev1.GetProcessRequest{Pid: tt.pid})
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tt.code)
			}
			if !strings.Contains(st.Message(), tt.message) {
				t.Errorf("message = %q, want it to contain %q", st.Message(), tt.message)
			}
			if tt.code == codes.OK && (resp.GetProcess().GetPid() != 1234 || !resp.GetProcess().GetSelf()) {
				t.Errorf("process = %v, want pid 1234, self", resp.GetProcess())
			}
		})
	}
}

func TestListProcessesFake(t *testing.T) {
	proc, cg := fakeRoots(t)
	client := serve(t, capability.Deps{ProcRoot: proc, CgroupRoot: cg})
	resp, err := client.ListProcesses(testContext(t), &triagev1.ListProcessesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int32
	for _, p := range resp.GetProcesses() {
		pids = append(pids, p.GetPid())
	}
	if resp.GetSelfPid() != 1234 || len(pids) != 2 || pids[0] != 7 || pids[1] != 1234 {
		t.Errorf("self %d, pids %v; want self 1234, pids [7 1234]", resp.GetSelfPid(), pids)
	}
}

// TestGetProcessSelfLive asks the real /proc for the sidecar (this test
// process) itself.
func TestGetProcessSelfLive(t *testing.T) {
	client := serve(t, capability.Deps{ProcRoot: "/proc", CgroupRoot: "/sys/fs/cgroup"})
	resp, err := client.GetProcess(testContext(t), &triagev1.GetProcessRequest{Pid: 0, IncludeSockets: true})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetProcess()
	if int(p.GetPid()) != os.Getpid() || !p.GetSelf() {
		t.Errorf("pid %d self %v, want %d and self", p.GetPid(), p.GetSelf(), os.Getpid())
	}
	if p.GetFds().GetOpen() == 0 || p.GetFds().GetByKind()["anon_inode"] == 0 || p.GetFds().GetSoftLimit() == 0 {
		t.Errorf("fds = %v, want open descriptors including the poller's and a limit", p.GetFds())
	}
	if g := p.GetGo(); g.GetGoVersion() == "" || g.GetMain().GetPath() != "github.com/triage-sh/triage" || g.GetSettings()["GOOS"] != "linux" {
		t.Errorf("go = %v", g)
	}
	if hasCgroupV2(t) {
		if c := p.GetCgroup(); c == nil || c.GetPath() == "" || c.GetCpuStat()["usage_usec"] == 0 {
			t.Errorf("cgroup = %v, unavailable %v", c, p.GetUnavailable())
		}
	}
	if p.GetStartTime() == nil || p.GetUptime() == nil || p.GetRssBytes() == 0 || len(p.GetCmdline()) == 0 {
		t.Errorf("process = %v", p)
	}
	resp2, err := client.ListProcesses(testContext(t), &triagev1.ListProcessesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if int(resp2.GetSelfPid()) != os.Getpid() {
		t.Errorf("self_pid = %d, want %d", resp2.GetSelfPid(), os.Getpid())
	}
}

// hasCgroupV2 reports whether this host mounts cgroup v2 where the engine
// looks for it (directly or, on a hybrid host, under unified/).
func hasCgroupV2(t *testing.T) bool {
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.controllers")); err == nil {
			return true
		}
	}
	t.Log("no cgroup v2 mount: the cgroup part is not checked")
	return false
}

func TestRegisterOff(t *testing.T) {
	srv := grpc.NewServer()
	defer srv.Stop()
	_, err := Register(srv, capability.Deps{ProcRoot: filepath.Join(t.TempDir(), "none")})
	off, ok := capability.AsOff(err)
	if !ok {
		t.Fatalf("Register() error = %v, want an OffError", err)
	}
	if !strings.Contains(off.Reason, "no proc filesystem") || off.Fix == "" {
		t.Errorf("off = %+v", off)
	}
	if len(srv.GetServiceInfo()) != 0 {
		t.Errorf("services registered while off: %v", srv.GetServiceInfo())
	}
}
