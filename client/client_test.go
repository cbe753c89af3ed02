package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar"
)

// dial connects with o and closes the client when the test ends.
func dial(t *testing.T, o client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(testContext(t), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func TestDevEndToEnd(t *testing.T) {
	addr, dev := startSidecar(t, nil)
	ctx := testContext(t)
	c := dial(t, client.Options{Addr: addr, Dev: dev, Timeout: 10 * time.Second})

	ex, err := c.Explain(ctx)
	if err != nil {
		t.Fatalf("Explain: %s", client.Describe(err))
	}
	caller := ex.GetAuth().GetCaller()
	if caller.GetName() != auth.DevClientIdentity || caller.GetMethod() != "mtls" || !slices.Contains(caller.GetRoles(), "operator") {
		t.Errorf("caller = %v, want %s over mtls with operator", caller, auth.DevClientIdentity)
	}
	if len(ex.GetCapabilities()) == 0 || ex.GetBuild().GetGoVersion() == "" {
		t.Errorf("explain lacks capabilities or build: %v", ex)
	}

	b, err := c.Version(ctx)
	if err != nil {
		t.Fatalf("Version: %s", client.Describe(err))
	}
	if b.GetVersion() == "" || b.GetPlatform() == "" {
		t.Errorf("version = %v, want version and platform", b)
	}

	list, err := c.ListProcesses(ctx)
	if err != nil {
		t.Fatalf("ListProcesses: %s", client.Describe(err))
	}
	if int(list.GetSelfPid()) != os.Getpid() {
		t.Errorf("self pid = %d, want %d (the sidecar runs in this test process)", list.GetSelfPid(), os.Getpid())
	}
	if !slices.ContainsFunc(list.GetProcesses(), func(p *triagev1.ProcessSummary) bool { return int(p.GetPid()) == os.Getpid() && p.GetSelf() }) {
		t.Errorf("the process list lacks this process marked self")
	}

	p, err := c.GetProcess(ctx, os.Getpid(), true)
	if err != nil {
		t.Fatalf("GetProcess: %s", client.Describe(err))
	}
	if int(p.GetPid()) != os.Getpid() || !p.GetSelf() || p.GetThreads() < 1 {
		t.Errorf("process = pid %d self %v threads %d, want this process", p.GetPid(), p.GetSelf(), p.GetThreads())
	}

	for _, svc := range []string{"", "triage.v1.ExplainService", "triage.v1.ProcessService"} {
		st, err := c.Health(ctx, svc)
		if err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Health(%q) = %v, %v; want SERVING", svc, st, err)
		}
	}
}

func TestGetProcessNotFound(t *testing.T) {
	addr, dev := startSidecar(t, nil)
	c := dial(t, client.Options{Addr: addr, Dev: dev})
	_, err := c.GetProcess(testContext(t), 999999999, false)
	if status.Code(err) != codes.NotFound {
		t.Fatalf("code = %v (%v), want NotFound", status.Code(err), err)
	}
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Op != "get process 999999999" || ce.Addr != addr {
		t.Errorf("error %#v does not name the operation and address", err)
	}
	d := client.Describe(err)
	if !strings.HasPrefix(d, "get process 999999999: NotFound: pid 999999999 not found") || strings.Contains(d, "\n") {
		t.Errorf("Describe = %q", d)
	}
}

func TestGetProcessPidOutOfRange(t *testing.T) {
	c := dial(t, client.Options{Addr: freeAddr(t), Insecure: true})
	_, err := c.GetProcess(testContext(t), 1<<40, false)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("code = %v (%v), want InvalidArgument", status.Code(err), err)
	}
}

func TestBearerToken(t *testing.T) {
	tokenFile, tokens, policy := writeTokens(t, "s3cret-token", "token-user")
	t.Run("over TLS", func(t *testing.T) {
		addr, dev := startSidecar(t, func(o *sidecar.Options) { o.TokensFile, o.PolicyFile = tokens, policy })
		// Trust the dev CA but present no client certificate: the token authenticates.
		c := dial(t, client.Options{Addr: addr, CA: filepath.Join(dev, "ca.pem"), TokenFile: tokenFile})
		ex, err := c.Explain(testContext(t))
		if err != nil {
			t.Fatalf("Explain: %s", client.Describe(err))
		}
		if got := ex.GetAuth().GetCaller(); got.GetName() != "token-user" || got.GetMethod() != "token" {
			t.Errorf("caller = %v, want token-user by token", got)
		}
	})
	t.Run("plaintext needs Insecure", func(t *testing.T) {
		addr, _ := startSidecar(t, func(o *sidecar.Options) {
			o.Dev, o.InsecureLocal, o.TokensFile, o.PolicyFile = "", true, tokens, policy
		})
		c := dial(t, client.Options{Addr: addr, TokenFile: tokenFile, Insecure: true})
		ex, err := c.Explain(testContext(t))
		if err != nil {
			t.Fatalf("Explain with Insecure: %s", client.Describe(err))
		}
		if got := ex.GetAuth().GetCaller().GetName(); got != "token-user" {
			t.Errorf("caller = %q, want token-user", got)
		}
	})
}

func TestUnixSocketPlaintext(t *testing.T) {
	_, _, policy := writeTokens(t, "unused", "unused")
	sock := filepath.Join(t.TempDir(), "triage.sock")
	startSidecar(t, func(o *sidecar.Options) {
		o.Dev, o.Addr, o.UnixSocket, o.InsecureLocal, o.PolicyFile = "", "", sock, true, policy
	})
	c := dial(t, client.Options{Addr: "unix://" + sock})
	ex, err := c.Explain(testContext(t))
	if err != nil {
		t.Fatalf("Explain over a unix socket: %s", client.Describe(err))
	}
	if got := ex.GetAuth().GetCaller(); got.GetMethod() != "unix-peer" || !strings.HasPrefix(got.GetName(), "uid:") {
		t.Errorf("caller = %v, want a unix-peer uid", got)
	}
}

// TestConnectionFailures checks the code and the hint of each way a
// connection fails, and that each renders as one line.
func TestConnectionFailures(t *testing.T) {
	addr, _ := startSidecar(t, nil)
	otherDev := t.TempDir()
	if _, err := auth.EnsureDev(otherDev); err != nil {
		t.Fatal(err)
	}
	tokenFile, _, _ := writeTokens(t, "tok", "someone")
	closed := freeAddr(t)
	tests := []struct {
		name     string
		opts     client.Options
		code     codes.Code
		contains []string
	}{
		{"nothing listening", client.Options{Addr: closed, Dev: otherDev}, codes.Unavailable,
			[]string{"explain: Unavailable: ", "connection refused", "is the sidecar running at " + closed + "?", "port-forward"}},
		{"wrong CA", client.Options{Addr: addr, Dev: otherDev}, codes.Unavailable,
			[]string{"explain: Unavailable: ", "x509", "check --ca / --dev"}},
		{"plaintext against TLS", client.Options{Addr: addr, Insecure: true}, codes.Unavailable,
			[]string{"explain: Unavailable: ", "drop --insecure"}},
		{"system roots do not trust the dev CA", client.Options{Addr: addr, TokenFile: tokenFile}, codes.Unavailable,
			[]string{"explain: Unavailable: ", "x509", "check --ca / --dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, tt.opts)
			_, err := c.Explain(testContext(t))
			if status.Code(err) != tt.code {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tt.code)
			}
			d := client.Describe(err)
			t.Logf("Describe: %s", d)
			for _, want := range tt.contains {
				if !strings.Contains(d, want) {
					t.Errorf("Describe = %q, want it to contain %q", d, want)
				}
			}
			if strings.Contains(d, "\n") {
				t.Errorf("Describe = %q spans lines", d)
			}
		})
	}
}

func TestDialRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	write(t, empty, "\n")
	dev := t.TempDir()
	files, err := auth.EnsureDev(dev)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     client.Options
		contains string
	}{
		{"missing CA", client.Options{CA: filepath.Join(dir, "nope.pem")}, "nope.pem"},
		{"cert without key", client.Options{Cert: files.ClientCert}, "both a certificate and a key"},
		{"missing token file", client.Options{TokenFile: filepath.Join(dir, "nope")}, "--token-file"},
		{"empty token file", client.Options{TokenFile: empty, Insecure: true}, "is empty"},
		{"insecure with TLS files", client.Options{Insecure: true, Dev: dev}, "drop --insecure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.Dial(testContext(t), tt.opts)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			d := client.Describe(err)
			if !strings.HasPrefix(d, "connect: ") || !strings.Contains(d, tt.contains) || strings.Contains(d, "\n") {
				t.Errorf("Describe = %q, want one line starting connect: and containing %q", d, tt.contains)
			}
		})
	}
}

func TestTimeoutBoundsEachCall(t *testing.T) {
	tests := []struct {
		name         string
		timeout      time.Duration
		wantDeadline bool
	}{
		{"no timeout", 0, false},
		{"timeout", time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hadDeadline bool
			probe := grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				_, hadDeadline = ctx.Deadline()
				return status.Error(codes.Unavailable, "probe")
			})
			c := dial(t, client.Options{Addr: freeAddr(t), Insecure: true, Timeout: tt.timeout, DialOptions: []grpc.DialOption{probe}})
			_, _ = c.Version(context.Background())
			if hadDeadline != tt.wantDeadline {
				t.Errorf("call had a deadline = %v, want %v", hadDeadline, tt.wantDeadline)
			}
		})
	}
}
