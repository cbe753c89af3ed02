package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/internal/procfs"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// Name is the capability's name in the sidecar's table.
const Name = "process"

// Capability returns the process capability's row.
func Capability() capability.Capability {
	return capability.Capability{Name: Name, Register: Register}
}

// Register registers ProcessService on s, reading d.ProcRoot and
// d.CgroupRoot. It returns an *capability.OffError when there is no proc
// filesystem to read.
func Register(s grpc.ServiceRegistrar, d capability.Deps) (cleanup func(), err error) {
	root := d.ProcRoot
	if root == "" {
		root = procfs.DefaultProcRoot
	}
	if _, err := os.Stat(filepath.Join(root, "stat")); err != nil {
		return nil, capability.Off(fmt.Sprintf("no proc filesystem at %s (%v)", root, err), "mount proc there, or pass the proc root the sidecar should read")
	}
	triagev1.RegisterProcessServiceServer(s, &server{in: NewInspector(d.ProcRoot, d.CgroupRoot)})
	return nil, nil
}

// server is the thin gRPC layer over an Inspector: it checks arguments and
// chooses status codes.
type server struct {
	triagev1.UnimplementedProcessServiceServer
	in *Inspector
}

// ListProcesses summarises every visible process.
func (s *server) ListProcesses(_ context.Context, _ *triagev1.ListProcessesRequest) (*triagev1.ListProcessesResponse, error) {
	procs, kthreads, err := s.in.List()
	if err != nil {
		return nil, err // uncoded: the server's interceptor makes it Internal
	}
	return &triagev1.ListProcessesResponse{Processes: procs, SelfPid: int32(s.in.SelfPID()), KernelThreads: int32(kthreads)}, nil
}

// GetProcess returns everything known about one process.
func (s *server) GetProcess(_ context.Context, req *triagev1.GetProcessRequest) (*triagev1.GetProcessResponse, error) {
	pid := req.GetPid()
	if pid < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "pid %d is negative: pass a pid from `triage proc`, or 0 for the sidecar itself", pid)
	}
	p, err := s.in.Get(int(pid), req.GetIncludeSockets())
	if IsNotFound(err) {
		return nil, status.Errorf(codes.NotFound, "pid %d not found: the sidecar sees only its own PID namespace; list visible processes with `triage proc` (the app's appear when the pod sets shareProcessNamespace: true)", pid)
	}
	if err != nil {
		return nil, err // uncoded: the server's interceptor makes it Internal
	}
	return &triagev1.GetProcessResponse{Process: p}, nil
}
