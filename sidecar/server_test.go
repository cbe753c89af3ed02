package sidecar

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/triage-sh/triage/internal/audit"
	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// callAny calls method with an empty request of its input type, whatever its
// shape (unary, server, client or bidi stream), and returns the status.
func callAny(ctx context.Context, conn *grpc.ClientConn, service string, m grpc.MethodInfo) error {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return fmt.Errorf("descriptor of %s: %w", service, err)
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(m.Name))
	in, out := dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output())
	full := "/" + service + "/" + m.Name
	if !m.IsClientStream && !m.IsServerStream {
		return conn.Invoke(ctx, full, in, out)
	}
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: m.IsServerStream, ClientStreams: m.IsClientStream}, full)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(in); err != nil {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	return cs.RecvMsg(out)
}

// TestEveryMethodIsGuarded walks every method of every registered service:
// without credentials each gets Unauthenticated, with an identity that has
// no role PermissionDenied; only grpc.health.v1 is open.
func TestEveryMethodIsGuarded(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	ctx := testCtx(t)
	anon := dial(t, s.addr, p.clientTLS(t, "", nil, auth.IssueOptions{}), "")
	nobody := dial(t, s.addr, p.clientTLS(t, idNoRole, nil, auth.IssueOptions{}), "")
	operator := dial(t, s.addr, p.clientTLS(t, idOperator, nil, auth.IssueOptions{}), "")
	var methods int
	for service, info := range s.srv.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			methods++
			full := service + "/" + m.Name
			open := service == healthpb.Health_ServiceDesc.ServiceName
			errAnon := callAny(ctx, anon, service, m)
			errNobody := callAny(ctx, nobody, service, m)
			if open {
				if status.Code(errAnon) != codes.OK || status.Code(errNobody) != codes.OK {
					t.Errorf("%s: health must be open: anon=%v nobody=%v", full, errAnon, errNobody)
				}
				continue
			}
			if status.Code(errAnon) != codes.Unauthenticated {
				t.Errorf("%s without credentials: %v, want Unauthenticated", full, errAnon)
			}
			if status.Code(errNobody) != codes.PermissionDenied {
				t.Errorf("%s with no role: %v, want PermissionDenied", full, errNobody)
			}
			// The operator holds every permission: the guard lets it through
			// (the handler may still refuse an empty request on its merits).
			if c := status.Code(callAny(ctx, operator, service, m)); c == codes.Unauthenticated || c == codes.PermissionDenied {
				t.Errorf("%s as operator: %v", full, c)
			}
		}
	}
	want := []string{"triage.v1.ExplainService", "triage.v1.ProcessService", "grpc.reflection.v1.ServerReflection", "grpc.health.v1.Health"}
	for _, svc := range want {
		if _, ok := s.srv.grpc.GetServiceInfo()[svc]; !ok {
			t.Errorf("service %s not registered", svc)
		}
	}
	if methods < 6 {
		t.Fatalf("walked only %d methods", methods)
	}
}

// TestRolePermissionMatrix calls one method per permission as each role.
func TestRolePermissionMatrix(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil, matrixCapability(t, nil, false))
	ctx := testCtx(t)
	allowed := map[string][]string{
		"viewer":   {"View"},
		"profiler": {"View", "Profile"},
		"capturer": {"View", "Profile", "Capture"},
		"operator": {"View", "Profile", "Capture", "Operate"},
		"none":     {},
	}
	for role, id := range roleIdentities {
		conn := dial(t, s.addr, p.clientTLS(t, id, nil, auth.IssueOptions{}), "")
		for method := range matrixMethods {
			want := codes.PermissionDenied
			for _, a := range allowed[role] {
				if a == method {
					want = codes.OK
				}
			}
			err := invokeMatrix(ctx, conn, method)
			if got := status.Code(err); got != want {
				t.Errorf("role %s calling %s: %v, want %v", role, method, err, want)
			}
			if want == codes.PermissionDenied && !strings.Contains(status.Convert(err).Message(), "bind it to role") {
				t.Errorf("denial message does not say what to do: %q", status.Convert(err).Message())
			}
		}
	}
	// Bearer tokens map to identities through the same policy.
	tokConn := dial(t, s.addr, p.clientTLS(t, "", nil, auth.IssueOptions{}), tokViewer)
	if err := invokeMatrix(ctx, tokConn, "View"); err != nil {
		t.Errorf("token viewer View: %v", err)
	}
	if err := invokeMatrix(ctx, tokConn, "Profile"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("token viewer Profile: %v", err)
	}
	badTok := dial(t, s.addr, p.clientTLS(t, "", nil, auth.IssueOptions{}), "wrong")
	if err := invokeMatrix(ctx, badTok, "View"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong token: %v", err)
	}
}

func TestMethodWithoutPermissionStopsStart(t *testing.T) {
	p := newPKI(t)
	o := DefaultOptions()
	o.Addr, o.TLSCert, o.TLSKey, o.ClientCA, o.PolicyFile = "127.0.0.1:0", p.certFile, p.keyFile, p.caFile, p.policy
	_, err := New(Config{Options: o, Capabilities: append(DefaultCapabilities(), matrixCapability(t, nil, true)), AuditWriter: &syncBuffer{}})
	if err == nil || !strings.Contains(err.Error(), "/"+matrixService+"/Unmarked") {
		t.Fatalf("err = %v, want the unmarked method named", err)
	}
}

// TestAuditOneRecordPerCall: 200 concurrent calls, allowed and denied, give
// exactly 200 well-formed audit lines.
func TestAuditOneRecordPerCall(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil, matrixCapability(t, nil, false))
	ctx := testCtx(t)
	viewer := dial(t, s.addr, p.clientTLS(t, idViewer, nil, auth.IssueOptions{}), "")
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			method := "View"
			if i%4 == 0 {
				method = "Operate" // denied
			}
			invokeMatrix(ctx, viewer, method)
		}()
	}
	wg.Wait()
	lines := s.audit.Lines()
	if len(lines) != 200 {
		t.Fatalf("%d audit lines, want 200", len(lines))
	}
	codesSeen := map[string]int{}
	for _, l := range lines {
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("bad audit line %q: %v", l, err)
		}
		if r.Identity != idViewer || r.AuthMethod != "mtls" || r.Peer == "" || r.Time.IsZero() || r.Permission == "" {
			t.Fatalf("incomplete record: %+v", r)
		}
		codesSeen[r.Code]++
	}
	if codesSeen["OK"] != 150 || codesSeen["PermissionDenied"] != 50 {
		t.Fatalf("codes %v, want 150 OK and 50 PermissionDenied", codesSeen)
	}
}

func TestAuditRecordFields(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	ctx := testCtx(t)
	conn := dial(t, s.addr, p.clientTLS(t, idViewer, nil, auth.IssueOptions{}), "")
	_, err := triagev1.NewProcessServiceClient(conn).GetProcess(ctx, &triagev1.GetProcessRequest{Pid: 999999999, IncludeSockets: true})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown pid: %v, want NotFound", err)
	}
	var r audit.Record
	if err := json.Unmarshal([]byte(s.audit.Lines()[0]), &r); err != nil {
		t.Fatal(err)
	}
	if r.Method != "/triage.v1.ProcessService/GetProcess" || r.Permission != "view" || r.Code != "NotFound" ||
		r.Args != "pid=999999999 include_sockets=true" || !strings.HasPrefix(r.Peer, "127.0.0.1:") {
		t.Fatalf("record %+v", r)
	}
}

func TestPanicBecomesInternalAndServerKeepsServing(t *testing.T) {
	p := newPKI(t)
	hook := func(method string) error {
		if method == "Profile" {
			panic("boom")
		}
		if method == "Capture" {
			return errors.New("disk on fire at /var/secret")
		}
		return nil
	}
	s := startServer(t, p, nil, matrixCapability(t, hook, false))
	ctx := testCtx(t)
	conn := dial(t, s.addr, p.clientTLS(t, idOperator, nil, auth.IssueOptions{}), "")
	err := invokeMatrix(ctx, conn, "Profile")
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic: %v, want Internal without the panic text", err)
	}
	err = invokeMatrix(ctx, conn, "Capture")
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "fire") {
		t.Fatalf("uncoded error: %v, want a generic Internal", err)
	}
	if err := invokeMatrix(ctx, conn, "View"); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
	lines := s.audit.Lines()
	if len(lines) != 3 || !strings.Contains(lines[0], `"message":"panic: boom"`) || !strings.Contains(lines[1], "disk on fire") {
		t.Fatalf("audit:\n%s", strings.Join(lines, "\n"))
	}
}

func TestInflightLimit(t *testing.T) {
	p := newPKI(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	hook := func(method string) error {
		if method == "Operate" {
			entered <- struct{}{}
			<-release
		}
		return nil
	}
	s := startServer(t, p, func(o *Options) { o.MaxInflight = 1 }, matrixCapability(t, hook, false))
	ctx := testCtx(t)
	conn := dial(t, s.addr, p.clientTLS(t, idOperator, nil, auth.IssueOptions{}), "")
	done := make(chan error)
	go func() { done <- invokeMatrix(ctx, conn, "Operate") }()
	<-entered
	err := invokeMatrix(ctx, conn, "View")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-inflight") {
		t.Errorf("over the limit: %v, want ResourceExhausted naming --max-inflight", err)
	}
	hc := healthpb.NewHealthClient(conn)
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health must not count against the limit: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := invokeMatrix(ctx, conn, "View"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestRequestSizeLimit(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, func(o *Options) { o.MaxRecvMsgBytes = 1024 })
	conn := dial(t, s.addr, p.clientTLS(t, idViewer, nil, auth.IssueOptions{}), "")
	big := dynamicpb.NewMessage((&triagev1.ExplainRequest{}).ProtoReflect().Descriptor())
	// An unknown field of 4 KiB makes the request too big without changing its meaning.
	big.SetUnknown(append([]byte{0xfa, 0x3f, 0x80, 0x20}, make([]byte, 4096)...))
	err := conn.Invoke(testCtx(t), "/triage.v1.ExplainService/Explain", big, &triagev1.ExplainResponse{})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized request: %v, want ResourceExhausted", err)
	}
	if _, err := triagev1.NewExplainServiceClient(conn).GetVersion(testCtx(t), &triagev1.GetVersionRequest{}); err != nil {
		t.Fatalf("next call: %v", err)
	}
}

func TestClientCertificatesRefused(t *testing.T) {
	p := newPKI(t)
	// mTLS only: the handshake itself demands a valid certificate.
	s := startServer(t, p, func(o *Options) { o.TokensFile = "" })
	ctx := testCtx(t)
	other, err := auth.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-48 * time.Hour)
	tests := []struct {
		name string
		cfg  *tls.Config
		want codes.Code
	}{
		{"valid", p.clientTLS(t, idViewer, nil, auth.IssueOptions{}), codes.OK},
		{"none", p.clientTLS(t, "", nil, auth.IssueOptions{}), codes.Unavailable},
		{"expired", p.clientTLS(t, idViewer, nil, auth.IssueOptions{NotBefore: past, NotAfter: past.Add(time.Hour)}), codes.Unavailable},
		{"wrong CA", p.clientTLS(t, idViewer, other, auth.IssueOptions{}), codes.Unavailable},
		{"wrong SAN", p.clientTLS(t, "spiffe://test/intruder", nil, auth.IssueOptions{}), codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t, s.addr, tt.cfg, "")
			_, err := triagev1.NewExplainServiceClient(conn).GetVersion(ctx, &triagev1.GetVersionRequest{})
			if status.Code(err) != tt.want {
				t.Fatalf("%v, want %v", err, tt.want)
			}
		})
	}
}

func TestCertificateAndTokenReload(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, nil)
	ctx := testCtx(t)
	serial := func() string {
		c, err := tls.Dial("tcp", s.addr, p.clientTLS(t, idViewer, nil, auth.IssueOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	p.issueServer(t)
	if after := serial(); after == before {
		t.Fatalf("server certificate not reloaded: serial %s both times", before)
	}
	// Tokens: rotate the file; the old token stops working, the new one works.
	writeFile(t, p.tokens, tokenLine("rotated-token", "token-viewer"))
	for tok, want := range map[string]codes.Code{tokViewer: codes.Unauthenticated, "rotated-token": codes.OK} {
		conn := dial(t, s.addr, p.clientTLS(t, "", nil, auth.IssueOptions{}), tok)
		_, err := triagev1.NewExplainServiceClient(conn).GetVersion(ctx, &triagev1.GetVersionRequest{})
		if status.Code(err) != want {
			t.Errorf("token %q after rotation: %v, want %v", tok, err, want)
		}
	}
	// Policy: revoke the viewer; the next call is denied.
	writeFile(t, p.policy, "bindings: []\n")
	conn := dial(t, s.addr, p.clientTLS(t, idViewer, nil, auth.IssueOptions{}), "")
	if _, err := triagev1.NewExplainServiceClient(conn).GetVersion(ctx, &triagev1.GetVersionRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("after revoking: %v, want PermissionDenied", err)
	}
}

func TestInsecureLocalUnixPeer(t *testing.T) {
	p := newPKI(t)
	sock := filepath.Join(t.TempDir(), "triage.sock")
	s := startServer(t, p, func(o *Options) {
		o.Addr, o.UnixSocket, o.InsecureLocal = "", sock, true
		o.TLSCert, o.TLSKey, o.ClientCA, o.TokensFile = "", "", "", ""
	})
	conn := dial(t, "unix://"+sock, nil, "")
	resp, err := triagev1.NewExplainServiceClient(conn).Explain(testCtx(t), &triagev1.ExplainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Auth.Caller; c.Method != "unix-peer" || !strings.HasPrefix(c.Name, "uid:") || len(c.Roles) != 1 || c.Roles[0] != "viewer" {
		t.Fatalf("caller %+v", c)
	}
	if !strings.Contains(s.audit.Lines()[0], `"auth_method":"unix-peer"`) {
		t.Fatalf("audit: %s", s.audit.Lines()[0])
	}
}

func TestStartupRefusals(t *testing.T) {
	p := newPKI(t)
	badPolicy := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, badPolicy, "bindings:\n  - identities: [a]\n    rolez: [viewer]\n")
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"insecure on all interfaces", func(o *Options) {
			o.Addr, o.InsecureLocal, o.TLSCert, o.TLSKey, o.ClientCA = "0.0.0.0:0", true, "", "", ""
		}, "--insecure-local allows plaintext only on loopback"},
		{"no TLS", func(o *Options) { o.TLSCert, o.TLSKey = "", "" }, "no TLS certificate"},
		{"no client auth", func(o *Options) { o.ClientCA, o.TokensFile = "", "" }, "no way for callers to authenticate"},
		{"missing cert file", func(o *Options) { o.TLSCert = "/nonexistent/cert.pem" }, "/nonexistent/cert.pem"},
		{"bad policy key", func(o *Options) { o.PolicyFile = badPolicy }, badPolicy + `:3: unknown key "rolez"`},
		{"nothing to listen on", func(o *Options) { o.Addr = "" }, "nothing to listen on"},
		{"bad addr", func(o *Options) { o.Addr = "localhost" }, `--addr "localhost"`},
		{"dev not on loopback", func(o *Options) { o.Dev, o.Addr = t.TempDir(), "0.0.0.0:0" }, "loopback only"},
		{"zero streams", func(o *Options) { o.MaxConcurrentStreams = 0 }, "--max-concurrent-streams"},
		{"bad kube auth", func(o *Options) { o.KubeAuth = "oidc" }, `--kube-auth "oidc"`},
		{"tls addr without a port", func(o *Options) { o.TLSAddr = "0.0.0.0" }, `--tls-addr "0.0.0.0"`},
		{"tls addr without cert", func(o *Options) { o.TLSAddr, o.TLSCert = ":0", "" }, "--tls-addr serves TLS"},
		{"insecure with TLS files and no tls addr", func(o *Options) { o.InsecureLocal = true }, "add --tls-addr"},
		{"tokenreview without pod", func(o *Options) { o.KubeAuth = "tokenreview" }, "--pod-name and --pod-namespace"},
		{"kube auth without API server", func(o *Options) { o.KubeAuth, o.KubeAPIServer = "jwks", "" }, "--kube-api-server"},
		{"kube auth on plain http", func(o *Options) { o.KubeAuth, o.KubeAPIServer = "jwks", "http://10.0.0.1" }, "use https"},
		{"empty kube audience", func(o *Options) { o.KubeAuth, o.KubeAudience = "jwks", " " }, "--kube-audience is empty"},
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			o.Addr, o.TLSCert, o.TLSKey, o.ClientCA, o.PolicyFile, o.TokensFile = "127.0.0.1:0", p.certFile, p.keyFile, p.caFile, p.policy, p.tokens
			tt.mutate(&o)
			srv, err := New(Config{Options: o, AuditWriter: &syncBuffer{}})
			if err == nil {
				srv.Close()
				t.Fatalf("started; want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestAddrInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := newPKI(t)
	o := DefaultOptions()
	o.Addr, o.TLSCert, o.TLSKey, o.ClientCA, o.PolicyFile = l.Addr().String(), p.certFile, p.keyFile, p.caFile, p.policy
	if _, err := New(Config{Options: o, AuditWriter: &syncBuffer{}}); err == nil || !strings.Contains(err.Error(), "pick another port") {
		t.Fatalf("err = %v", err)
	}
}

func TestDevMode(t *testing.T) {
	dir := t.TempDir()
	o := DefaultOptions()
	o.Addr, o.Dev = "127.0.0.1:0", dir
	srv, err := New(Config{Options: o, AuditWriter: &syncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	files, err := auth.EnsureDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.ClientTLS(files.CA, files.ClientCert, files.ClientKey, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, srv.Addrs()[0].String(), cfg, "")
	resp, err := triagev1.NewExplainServiceClient(conn).Explain(testCtx(t), &triagev1.ExplainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Auth.Caller.Name != auth.DevClientIdentity || resp.Auth.Caller.Roles[0] != "operator" {
		t.Fatalf("caller %+v", resp.Auth.Caller)
	}
	var devSources int
	for _, st := range resp.Settings {
		if st.Source == triagev1.Source_SOURCE_DEV {
			devSources++
		}
	}
	if devSources != 4 {
		t.Fatalf("%d settings from dev mode, want 4 (tls-cert, tls-key, client-ca, policy-file): %v", devSources, resp.Settings)
	}
}
