package envoy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/triage-sh/triage/internal/envoyadmin/adminurl"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// WorkerBinary is the Envoy worker's executable name.
const WorkerBinary = "triage-envoy"

// Metadata keys that carry the caller to the worker, for its log.
const (
	MetadataIdentity   = "triage-identity"
	MetadataAuthMethod = "triage-auth-method"
)

// checkAdminURL checks --envoy-admin at start, as the worker will.
func checkAdminURL(o Options) error {
	if _, err := adminurl.Parse(o.AdminURL, o.AllowRemote); err != nil {
		msg := err.Error()
		if !o.AllowRemote && strings.Contains(msg, "not loopback") {
			msg += " (--envoy-allow-remote permits another address)"
		}
		return fmt.Errorf("--envoy-admin: %s: %s", o.AdminURL, msg)
	}
	return nil
}

// findWorker resolves the worker binary: the flag, else beside the
// sidecar's executable, else PATH.
func findWorker(path string) (string, error) {
	if path != "" {
		if _, err := exec.LookPath(path); err != nil {
			return "", fmt.Errorf("--envoy-worker %s: %w", path, err)
		}
		return path, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), WorkerBinary)
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(WorkerBinary); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("--envoy-admin is set but the %s worker binary is not beside triage-sidecar nor on PATH; install it or give --envoy-worker PATH", WorkerBinary)
}

// Args are the worker's command line for o.
func (o Options) Args() []string {
	return []string{
		"--envoy-admin=" + o.AdminURL,
		"--envoy-timeout=" + o.Timeout.String(),
		"--envoy-max-response-bytes=" + strconv.FormatInt(o.MaxResponseBytes, 10),
		"--envoy-max-stats=" + strconv.Itoa(o.MaxStats),
		"--envoy-tap-max-duration=" + o.TapMaxDuration.String(),
		"--envoy-tap-max-bytes=" + strconv.FormatInt(o.TapMaxBytes, 10),
		"--envoy-tap-max-concurrent=" + strconv.Itoa(o.TapMaxConcurrent),
		"--envoy-explain-timeout=" + o.ExplainTimeout.String(),
		"--envoy-allow-remote=" + strconv.FormatBool(o.AllowRemote),
		"--envoy-allow-quit=" + strconv.FormatBool(o.AllowQuit),
		"--envoy-allow-runtime-modify=" + strconv.FormatBool(o.AllowRuntimeModify),
		"--envoy-allow-drain-listeners=" + strconv.FormatBool(o.AllowDrainListeners),
	}
}

// workerProc is a running worker.
type workerProc struct {
	cmd    *exec.Cmd
	conn   *grpc.ClientConn
	client triagev1.EnvoyServiceClient
	exited chan struct{}
}

// proxy is EnvoyService as the sidecar registers it: every call goes to
// the worker, started on demand.
type proxy struct {
	triagev1.UnimplementedEnvoyServiceServer
	o      Options
	worker string
	log    *slog.Logger
	now    func() time.Time

	mu     sync.Mutex
	w      *workerProc
	active int
	last   time.Time
	closed bool
	stop   chan struct{}

	cache findingsCache
}

func newProxy(o Options, worker string, d capability.Deps) *proxy {
	p := &proxy{o: o, worker: worker, log: d.Logger, now: time.Now, stop: make(chan struct{})}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	go p.reapIdle()
	return p
}

// close stops the worker and the idle reaper.
func (p *proxy) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	w := p.w
	p.w = nil
	p.mu.Unlock()
	if w != nil {
		w.shutdown()
	}
}

// reapIdle stops the worker after --envoy-worker-idle without calls.
func (p *proxy) reapIdle() {
	every := min(max(p.o.WorkerIdle/4, 10*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		w := p.w
		if w == nil || p.active > 0 || p.now().Sub(p.last) < p.o.WorkerIdle {
			p.mu.Unlock()
			continue
		}
		p.w = nil
		p.mu.Unlock()
		p.log.Info("stopping the idle Envoy worker", "idle", p.o.WorkerIdle.String())
		w.shutdown()
	}
}

// shutdown closes the worker's socket (it exits on end of file) and
// waits for it, killing it after a grace period.
func (w *workerProc) shutdown() {
	_ = w.conn.Close()
	select {
	case <-w.exited:
	case <-time.After(5 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

// errWorkerConnUsed: the worker's connection cannot be redialled; a new
// worker is started instead.
var errWorkerConnUsed = errors.New("the Envoy worker's connection closed")

// start runs the worker on one end of a socket pair and connects gRPC to
// the other end.
func (p *proxy) start() (*workerProc, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket pair for the Envoy worker: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "envoy-worker"), os.NewFile(uintptr(fds[1]), "envoy-worker")
	defer theirs.Close()
	cmd := exec.Command(p.worker, p.o.Args()...)
	cmd.ExtraFiles = []*os.File{theirs} // fd 3, triage-envoy's --fd default
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		mine.Close()
		return nil, fmt.Errorf("starting the Envoy worker %s: %w", p.worker, err)
	}
	nc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("the Envoy worker's socket: %w", err)
	}
	var once sync.Once
	dial := func(context.Context, string) (net.Conn, error) {
		var c net.Conn
		once.Do(func() { c = nc })
		if c == nil {
			return nil, errWorkerConnUsed
		}
		return c, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+WorkerBinary,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dial),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		nc.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("connecting to the Envoy worker: %w", err)
	}
	w := &workerProc{cmd: cmd, conn: cc, client: triagev1.NewEnvoyServiceClient(cc), exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		close(w.exited) // before the connection closes, so acquire never hands out a closing one
		if err != nil {
			p.log.Warn("the Envoy worker exited", "err", err.Error())
		}
		_ = cc.Close()
	}()
	p.log.Info("started the Envoy worker", "pid", cmd.Process.Pid, "binary", p.worker)
	return w, nil
}

// acquire returns the worker's client (starting the worker if need be) and
// a release function; the worker is not stopped while a call holds it.
func (p *proxy) acquire(ctx context.Context) (context.Context, *workerProc, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, nil, status.Error(codes.Unavailable, "the sidecar is shutting down")
	}
	if p.w != nil {
		select {
		case <-p.w.exited:
			p.w = nil
		default:
		}
	}
	if p.w == nil {
		w, err := p.start()
		if err != nil {
			return nil, nil, nil, status.Errorf(codes.Unavailable, "%v (the sidecar needs its %s worker for Envoy calls)", err, WorkerBinary)
		}
		p.w = w
	}
	p.active++
	release := func() {
		p.mu.Lock()
		p.active--
		p.last = p.now()
		p.mu.Unlock()
	}
	if id, ok := capability.IdentityFrom(ctx); ok {
		ctx = metadata.AppendToOutgoingContext(ctx, MetadataIdentity, id.Name, MetadataAuthMethod, id.Method)
	}
	return ctx, p.w, release, nil
}

// died reports whether err came from w having exited (it is then replaced
// by the next acquire).
func (w *workerProc) died(err error) bool {
	if c := status.Code(err); c != codes.Unavailable && c != codes.Canceled {
		return false
	}
	select {
	case <-w.exited:
		return true
	case <-time.After(200 * time.Millisecond):
		return false
	}
}

// unary forwards one unary call.
// A call that failed because the worker had just died is made once more
// on a new worker (the worker died before it could act on it, or the
// call is one Envoy takes twice the same way: reads, log levels,
// health-check fail/ok, counter resets).
func unary[Req, Resp any](p *proxy, ctx context.Context, req Req, call func(triagev1.EnvoyServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	for attempt := 0; ; attempt++ {
		cctx, w, release, err := p.acquire(ctx)
		if err != nil {
			var zero Resp
			return zero, err
		}
		resp, err := call(w.client, cctx, req)
		release()
		if err == nil || attempt > 0 || ctx.Err() != nil || !w.died(err) {
			return resp, err
		}
	}
}

// streamed forwards one server-streaming call, message by message.
func streamed[Req, Resp any](p *proxy, req Req, out grpc.ServerStreamingServer[Resp], call func(triagev1.EnvoyServiceClient, context.Context, Req, ...grpc.CallOption) (grpc.ServerStreamingClient[Resp], error)) error {
	ctx, w, release, err := p.acquire(out.Context())
	if err != nil {
		return err
	}
	defer release()
	in, err := call(w.client, ctx, req)
	if err != nil {
		return err
	}
	for {
		m, err := in.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := out.Send(m); err != nil {
			return err
		}
	}
}

// Explain forwards EnvoyService.Explain to the worker.
func (p *proxy) Explain(ctx context.Context, req *triagev1.EnvoyServiceExplainRequest) (*triagev1.EnvoyServiceExplainResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.Explain)
}

// ListClusters forwards EnvoyService.ListClusters to the worker.
func (p *proxy) ListClusters(ctx context.Context, req *triagev1.ListClustersRequest) (*triagev1.ListClustersResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.ListClusters)
}

// ListListeners forwards EnvoyService.ListListeners to the worker.
func (p *proxy) ListListeners(ctx context.Context, req *triagev1.ListListenersRequest) (*triagev1.ListListenersResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.ListListeners)
}

// ListRouteConfigs forwards EnvoyService.ListRouteConfigs to the worker.
func (p *proxy) ListRouteConfigs(ctx context.Context, req *triagev1.ListRouteConfigsRequest) (*triagev1.ListRouteConfigsResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.ListRouteConfigs)
}

// GetCertificates forwards EnvoyService.GetCertificates to the worker.
func (p *proxy) GetCertificates(ctx context.Context, req *triagev1.GetCertificatesRequest) (*triagev1.GetCertificatesResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.GetCertificates)
}

// GetStats forwards EnvoyService.GetStats to the worker.
func (p *proxy) GetStats(ctx context.Context, req *triagev1.GetStatsRequest) (*triagev1.GetStatsResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.GetStats)
}

// GetServerInfo forwards EnvoyService.GetServerInfo to the worker.
func (p *proxy) GetServerInfo(ctx context.Context, req *triagev1.GetServerInfoRequest) (*triagev1.GetServerInfoResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.GetServerInfo)
}

// MatchRoute forwards EnvoyService.MatchRoute to the worker.
func (p *proxy) MatchRoute(ctx context.Context, req *triagev1.MatchRouteRequest) (*triagev1.MatchRouteResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.MatchRoute)
}

// GetLogLevels forwards EnvoyService.GetLogLevels to the worker.
func (p *proxy) GetLogLevels(ctx context.Context, req *triagev1.GetLogLevelsRequest) (*triagev1.GetLogLevelsResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.GetLogLevels)
}

// SetLogLevel forwards EnvoyService.SetLogLevel to the worker.
func (p *proxy) SetLogLevel(ctx context.Context, req *triagev1.SetLogLevelRequest) (*triagev1.SetLogLevelResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.SetLogLevel)
}

// SetHealthCheck forwards EnvoyService.SetHealthCheck to the worker.
func (p *proxy) SetHealthCheck(ctx context.Context, req *triagev1.SetHealthCheckRequest) (*triagev1.SetHealthCheckResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.SetHealthCheck)
}

// ResetCounters forwards EnvoyService.ResetCounters to the worker.
func (p *proxy) ResetCounters(ctx context.Context, req *triagev1.ResetCountersRequest) (*triagev1.ResetCountersResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.ResetCounters)
}

// Quit forwards EnvoyService.Quit to the worker.
func (p *proxy) Quit(ctx context.Context, req *triagev1.QuitRequest) (*triagev1.QuitResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.Quit)
}

// ModifyRuntime forwards EnvoyService.ModifyRuntime to the worker.
func (p *proxy) ModifyRuntime(ctx context.Context, req *triagev1.ModifyRuntimeRequest) (*triagev1.ModifyRuntimeResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.ModifyRuntime)
}

// DrainListeners forwards EnvoyService.DrainListeners to the worker.
func (p *proxy) DrainListeners(ctx context.Context, req *triagev1.DrainListenersRequest) (*triagev1.DrainListenersResponse, error) {
	return unary(p, ctx, req, triagev1.EnvoyServiceClient.DrainListeners)
}

// GetConfigDump forwards EnvoyService.GetConfigDump to the worker.
func (p *proxy) GetConfigDump(req *triagev1.GetConfigDumpRequest, stream grpc.ServerStreamingServer[triagev1.GetConfigDumpResponse]) error {
	return streamed(p, req, stream, triagev1.EnvoyServiceClient.GetConfigDump)
}

// Tap forwards EnvoyService.Tap to the worker.
func (p *proxy) Tap(req *triagev1.TapRequest, stream grpc.ServerStreamingServer[triagev1.TapResponse]) error {
	return streamed(p, req, stream, triagev1.EnvoyServiceClient.Tap)
}

// findingsTTL is how long explain reuses what it read of Envoy: callers
// that arrive together share one read of a config dump that may be
// megabytes.
const findingsTTL = time.Second

// Finding codes of the contributor itself (envoyexplain's are "envoy-*" too).
const (
	codeUnreachable = "envoy-unreachable"
	codeUnsupported = "envoy-dump-unsupported"
	codeTooLarge    = "envoy-dump-too-large"
	codeAdminError  = "envoy-admin-error"
)

// findingsCache holds the last Envoy findings.
type findingsCache struct {
	mu       sync.Mutex
	at       time.Time
	valid    bool
	findings []*triagev1.Finding
}

// explain adds Envoy's findings to `triage explain`. It never fails the
// explanation: an Envoy that does not answer within --envoy-explain-timeout
// is itself a finding.
func (p *proxy) explain(ctx context.Context, resp *triagev1.ExplainResponse) {
	for _, f := range p.findings(ctx) {
		resp.Findings = append(resp.Findings, proto.Clone(f).(*triagev1.Finding))
	}
}

// findings asks the worker at most once per findingsTTL; concurrent
// callers wait for one answer.
func (p *proxy) findings(ctx context.Context) []*triagev1.Finding {
	c := &p.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid && p.now().Sub(c.at) < findingsTTL {
		return c.findings
	}
	// Not the caller's cancellation: the result is shared with other callers.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.o.ExplainTimeout)
	defer cancel()
	resp, err := p.Explain(ctx, &triagev1.EnvoyServiceExplainRequest{})
	if err != nil {
		c.findings = []*triagev1.Finding{p.errorFinding(err)}
	} else {
		c.findings = resp.GetFindings()
	}
	c.at, c.valid = p.now(), true
	return c.findings
}

// errorFinding turns a failed read of Envoy into a finding.
func (p *proxy) errorFinding(err error) *triagev1.Finding {
	url := p.o.AdminURL
	st := status.Convert(err)
	f := &triagev1.Finding{Severity: triagev1.Severity_SEVERITY_WARNING, Evidence: []string{st.Message()}}
	switch {
	case st.Code() == codes.DeadlineExceeded:
		f.Code = codeUnreachable
		f.Message = fmt.Sprintf("the Envoy admin at %s did not answer within %s", url, p.o.ExplainTimeout)
		f.Fix = "Envoy may be overloaded or stuck: triage envoy server-info; a large config dump may need a longer --envoy-explain-timeout"
	case st.Code() == codes.FailedPrecondition && strings.Contains(st.Message(), "pre-v3"):
		f.Severity, f.Code = triagev1.Severity_SEVERITY_INFO, codeUnsupported
		f.Message = "the Envoy at " + url + " is too old to explain: its config dump uses the pre-v3 admin API"
		f.Fix = "upgrade the proxy (Envoy 1.13 or newer, Istio 1.5 or newer)"
	case st.Code() == codes.ResourceExhausted:
		f.Code = codeTooLarge
		f.Message = "the Envoy config dump at " + url + " is larger than the sidecar reads"
		f.Fix = "raise --envoy-max-response-bytes"
	case st.Code() == codes.Unavailable && strings.Contains(st.Message(), WorkerBinary):
		f.Code = codeAdminError
		f.Message = "the sidecar's Envoy worker could not start"
		f.Fix = "install " + WorkerBinary + " beside triage-sidecar or give --envoy-worker PATH"
	case st.Code() == codes.Unavailable, st.Code() == codes.Internal, st.Code() == codes.Unknown:
		f.Code = codeUnreachable
		f.Message = "the Envoy admin at " + url + " does not answer as Envoy's admin does"
		f.Fix = "check that Envoy runs in the pod and that --envoy-admin names its admin port (Istio: http://127.0.0.1:15000); triage envoy explain shows the error"
	default:
		f.Code = codeAdminError
		f.Message = "the Envoy admin at " + url + " could not be read"
		f.Fix = "triage envoy explain shows the error"
	}
	return f
}
