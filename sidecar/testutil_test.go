package sidecar

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// pki is a test CA with a server certificate and client certificates for
// one identity per role, written to dir.
type pki struct {
	dir      string
	ca       *auth.CA
	caFile   string
	certFile string
	keyFile  string
	policy   string
	tokens   string
}

// Identities bound in the test policy.
const (
	idViewer   = "spiffe://test/viewer"
	idProfiler = "spiffe://test/profiler"
	idCapturer = "spiffe://test/capturer"
	idOperator = "spiffe://test/operator"
	idNoRole   = "spiffe://test/nobody"
	tokViewer  = "s3cret-viewer-token"
)

var roleIdentities = map[string]string{
	"viewer": idViewer, "profiler": idProfiler, "capturer": idCapturer, "operator": idOperator, "none": idNoRole,
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	ca, err := auth.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{dir: dir, ca: ca, caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"),
		keyFile: filepath.Join(dir, "server-key.pem"), policy: filepath.Join(dir, "policy.yaml"), tokens: filepath.Join(dir, "tokens")}
	writeFile(t, p.caFile, string(ca.CertPEM))
	p.issueServer(t)
	writeFile(t, p.policy, `bindings:
  - identities: ["`+idViewer+`", "token-viewer", "uid:*"]
    roles: [viewer]
  - identities: ["`+idProfiler+`"]
    roles: [profiler]
  - identities: ["`+idCapturer+`"]
    roles: [capturer]
  - identities: ["`+idOperator+`"]
    roles: [operator]
`)
	writeFile(t, p.tokens, tokenLine(tokViewer, "token-viewer"))
	return p
}

func (p *pki) issueServer(t *testing.T) {
	t.Helper()
	cert, key, err := p.ca.Issue(auth.IssueOptions{CommonName: "sidecar", DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.WriteKeyPair(p.certFile, p.keyFile, cert, key); err != nil {
		t.Fatal(err)
	}
}

// clientTLS returns a client TLS config presenting a certificate for id
// (none when id is ""), issued by ca (p.ca when nil) with o's validity.
func (p *pki) clientTLS(t *testing.T, id string, ca *auth.CA, o auth.IssueOptions) *tls.Config {
	t.Helper()
	if ca == nil {
		ca = p.ca
	}
	certFile, keyFile := "", ""
	if id != "" {
		o.URIs, o.Client = []string{id}, true
		cert, key, err := ca.Issue(o)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile = filepath.Join(t.TempDir(), "c.pem"), filepath.Join(t.TempDir(), "k.pem")
		if err := auth.WriteKeyPair(certFile, keyFile, cert, key); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := auth.ClientTLS(p.caFile, certFile, keyFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func tokenLine(token, identity string) string {
	return "sha256:" + sha256Hex(token) + " " + identity + "\n"
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a goroutine-safe audit sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// started is a running test server.
type started struct {
	srv   *Server
	addr  string
	audit *syncBuffer
	pki   *pki
}

// startServer starts a server with mTLS and tokens, the test policy, the
// default capabilities plus extra, and returns once it serves.
func startServer(t *testing.T, p *pki, mutate func(*Options), extra ...capability.Capability) *started {
	t.Helper()
	o := DefaultOptions()
	o.Addr = "127.0.0.1:0"
	o.TLSCert, o.TLSKey, o.ClientCA = p.certFile, p.keyFile, p.caFile
	o.PolicyFile, o.TokensFile = p.policy, p.tokens
	o.ReloadInterval = 0
	if mutate != nil {
		mutate(&o)
	}
	buf := &syncBuffer{}
	caps := append(DefaultCapabilities(), extra...)
	srv, err := New(Config{Options: o, Capabilities: caps, AuditWriter: buf, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	st := &started{srv: srv, audit: buf, pki: p}
	if len(srv.Addrs()) > 0 && srv.Addrs()[0].Network() == "tcp" {
		st.addr = srv.Addrs()[0].String()
	}
	return st
}

// dial connects with cfg (plaintext when nil), and a bearer token when token != "".
func dial(t *testing.T, target string, cfg *tls.Config, token string) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: token, secure: cfg != nil}))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}
func (b bearer) RequireTransportSecurity() bool { return b.secure }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The matrix service: one method per permission, declared the way real
// services declare theirs (the (triage.v1.permission) option in a
// registered descriptor), so the server's real permission lookup is tested.
const matrixService = "triage.servertest.v1.MatrixService"

var matrixMethods = map[string]triagev1.Permission{
	"View":    triagev1.Permission_PERMISSION_VIEW,
	"Profile": triagev1.Permission_PERMISSION_PROFILE,
	"Capture": triagev1.Permission_PERMISSION_CAPTURE,
	"Operate": triagev1.Permission_PERMISSION_OPERATE,
}

var registerMatrixOnce sync.Once

// registerMatrixDescriptor adds the matrix service's descriptor to the global registry.
func registerMatrixDescriptor(t *testing.T) {
	registerMatrixOnce.Do(func() {
		fd := &descriptorpb.FileDescriptorProto{
			Name:       proto.String("triage/servertest/v1/matrix.proto"),
			Package:    proto.String("triage.servertest.v1"),
			Syntax:     proto.String("proto3"),
			Dependency: []string{"google/protobuf/empty.proto", "triage/v1/permission.proto"},
			Service:    []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("MatrixService")}},
		}
		for _, name := range []string{"View", "Profile", "Capture", "Operate", "Unmarked"} {
			opts := &descriptorpb.MethodOptions{}
			if p, ok := matrixMethods[name]; ok {
				proto.SetExtension(opts, triagev1.E_Permission, p)
			}
			fd.Service[0].Method = append(fd.Service[0].Method, &descriptorpb.MethodDescriptorProto{
				Name: proto.String(name), InputType: proto.String(".google.protobuf.Empty"),
				OutputType: proto.String(".google.protobuf.Empty"), Options: opts,
			})
		}
		f, err := protodesc.NewFile(fd, protoregistry.GlobalFiles)
		if err != nil {
			panic(err)
		}
		if err := protoregistry.GlobalFiles.RegisterFile(f); err != nil {
			panic(err)
		}
	})
	var _ protoreflect.FileDescriptor
}

// matrixCapability registers the matrix service; hook runs inside every
// handler (nil: return at once). unmarked adds the method without a permission.
func matrixCapability(t *testing.T, hook func(method string) error, unmarked bool) capability.Capability {
	registerMatrixDescriptor(t)
	desc := grpc.ServiceDesc{ServiceName: matrixService, HandlerType: (*any)(nil)}
	names := []string{"View", "Profile", "Capture", "Operate"}
	if unmarked {
		names = append(names, "Unmarked")
	}
	for _, name := range names {
		desc.Methods = append(desc.Methods, grpc.MethodDesc{
			MethodName: name,
			Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(emptypb.Empty)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, req any) (any, error) {
					if hook != nil {
						if err := hook(name); err != nil {
							return nil, err
						}
					}
					return &emptypb.Empty{}, nil
				}
				info := &grpc.UnaryServerInfo{FullMethod: "/" + matrixService + "/" + name}
				if ic == nil {
					return h(ctx, in)
				}
				return ic(ctx, in, info, h)
			},
		})
	}
	return capability.Capability{Name: "matrix", Register: func(s grpc.ServiceRegistrar, _ capability.Deps) (func(), error) {
		s.RegisterService(&desc, struct{}{})
		return nil, nil
	}}
}

func invokeMatrix(ctx context.Context, conn *grpc.ClientConn, method string) error {
	return conn.Invoke(ctx, "/"+matrixService+"/"+method, &emptypb.Empty{}, &emptypb.Empty{})
}
