package client

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/internal/version"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// DefaultAddr is the sidecar's default listen address: loopback, reached
// from outside the pod through a port-forward.
const DefaultAddr = "127.0.0.1:7070"

// Options say where the sidecar is and how to authenticate to it.
type Options struct {
	// Addr is "host:port" or "unix:///path/to/socket"; "" means DefaultAddr.
	Addr string
	// Dev is a development-mode directory: its CA, client certificate and
	// key are used (and created if missing, as the sidecar's --dev does).
	// Explicit CA, Cert and Key take precedence over Dev's.
	Dev string
	// CA is the PEM bundle the sidecar's certificate must chain to; ""
	// means the system roots.
	CA string
	// Cert and Key are the client certificate and key (PEM) for mTLS.
	Cert, Key string
	// TokenFile holds a bearer token, sent as "authorization: Bearer <token>".
	// Tokens need transport security unless Insecure is set.
	TokenFile string
	// Token is a bearer token held in memory (for example one minted by
	// the Kubernetes TokenRequest API), sent like TokenFile's. Token and
	// TokenFile are exclusive.
	Token string
	// Insecure connects in plaintext, for sidecars run with
	// --insecure-local. Plaintext reaches only loopback and Unix sockets.
	Insecure bool
	// ServerName overrides the name the sidecar's certificate is checked
	// against (by default the host of Addr).
	ServerName string
	// Timeout bounds each call whose context has no earlier deadline; 0
	// means no bound.
	Timeout time.Duration
	// DialOptions are appended to the client's own, e.g. for tests.
	DialOptions []grpc.DialOption
}

// Client is a connection to one sidecar. It is safe for concurrent use.
type Client struct {
	addr    string
	timeout time.Duration
	conn    *grpc.ClientConn
	explain triagev1.ExplainServiceClient
	process triagev1.ProcessServiceClient
	runtime triagev1.RuntimeServiceClient
	capture triagev1.CaptureServiceClient
	envoy   triagev1.EnvoyServiceClient
	health  healthpb.HealthClient

	closeOnce sync.Once
	closeErr  error
}

// Dial prepares a connection to the sidecar at o.Addr. It reads the TLS
// and token files now, so a missing or invalid file fails here; the
// network connection itself is made by the first call, whose error then
// says whether the sidecar was unreachable or refused the handshake.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "connect", Addr: o.Addr, Err: err}
	}
	creds, err := transportCredentials(o)
	if err != nil {
		return nil, &Error{Op: "connect", Addr: o.Addr, Err: err}
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("triage-client/" + version.Build().GetVersion()),
	}
	tok, err := bearerToken(o)
	if err != nil {
		return nil, &Error{Op: "connect", Addr: o.Addr, Err: err}
	}
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: tok, requireSecurity: !o.Insecure}))
	}
	opts = append(opts, o.DialOptions...)
	conn, err := grpc.NewClient(target(o.Addr), opts...)
	if err != nil {
		return nil, &Error{Op: "connect", Addr: o.Addr, Err: fmt.Errorf("address %q: %w (use host:port or unix:///path)", o.Addr, err)}
	}
	return &Client{
		addr:    o.Addr,
		timeout: o.Timeout,
		conn:    conn,
		explain: triagev1.NewExplainServiceClient(conn),
		process: triagev1.NewProcessServiceClient(conn),
		runtime: triagev1.NewRuntimeServiceClient(conn),
		capture: triagev1.NewCaptureServiceClient(conn),
		envoy:   triagev1.NewEnvoyServiceClient(conn),
		health:  healthpb.NewHealthClient(conn),
	}, nil
}

// target turns an address into a gRPC target: unix: targets pass through,
// host:port is resolved by the default (DNS) resolver.
func target(addr string) string {
	if strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "unix-abstract:") {
		return addr
	}
	return "dns:///" + addr
}

// isUnix reports whether addr names a Unix socket.
func isUnix(addr string) bool {
	return strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "unix-abstract:")
}

// Addr is the address the client connects to.
func (c *Client) Addr() string { return c.addr }

// Conn is the underlying connection, for services without a typed method yet.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection. Closing again does nothing and returns the
// first call's error.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if err := c.conn.Close(); err != nil {
			c.closeErr = fmt.Errorf("close connection to %s: %w", c.addr, err)
		}
	})
	return c.closeErr
}

// call bounds ctx by the client's timeout.
func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// wrap names the failed operation, keeping the gRPC status.
func (c *Client) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Addr: c.addr, Err: err}
}

// Explain returns the sidecar's explanation of itself and what it sees.
func (c *Client) Explain(ctx context.Context) (*triagev1.ExplainResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.explain.Explain(ctx, &triagev1.ExplainRequest{})
	return resp, c.wrap("explain", err)
}

// Version returns the sidecar's build.
func (c *Client) Version(ctx context.Context) (*triagev1.Build, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.explain.GetVersion(ctx, &triagev1.GetVersionRequest{})
	if err != nil {
		return nil, c.wrap("get version", err)
	}
	return resp.GetBuild(), nil
}

// ListProcesses summarises every process the sidecar can see.
func (c *Client) ListProcesses(ctx context.Context) (*triagev1.ListProcessesResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.process.ListProcesses(ctx, &triagev1.ListProcessesRequest{})
	return resp, c.wrap("list processes", err)
}

// GetProcess returns everything the sidecar knows about pid (0 is the
// sidecar itself); includeSockets lists every TCP and UDP socket.
func (c *Client) GetProcess(ctx context.Context, pid int, includeSockets bool) (*triagev1.Process, error) {
	op := fmt.Sprintf("get process %d", pid)
	if int64(pid) != int64(int32(pid)) {
		return nil, c.wrap(op, status.Errorf(codes.InvalidArgument, "pid %d is out of range: a pid fits in 32 bits; list pids with `triage proc`", pid))
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.process.GetProcess(ctx, &triagev1.GetProcessRequest{Pid: int32(pid), IncludeSockets: includeSockets})
	if err != nil {
		return nil, c.wrap(op, err)
	}
	return resp.GetProcess(), nil
}

// Health returns the serving status of service ("" is the server as a
// whole, else a full service name such as "triage.v1.ExplainService").
// Health needs no permission, so it also tells whether the sidecar is up
// when the caller's identity has no roles.
func (c *Client) Health(ctx context.Context, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		op := "health check"
		if service != "" {
			op += " of " + service
		}
		return healthpb.HealthCheckResponse_UNKNOWN, c.wrap(op, err)
	}
	return resp.GetStatus(), nil
}
