package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/client"
)

func TestDescribe(t *testing.T) {
	const addr = "127.0.0.1:7070"
	wrap := func(op string, err error) error { return &client.Error{Op: op, Addr: addr, Err: err} }
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"server message kept as is",
			wrap("get process 7", status.Error(codes.NotFound, "pid 7 not found: list visible processes with `triage proc`")),
			"get process 7: NotFound: pid 7 not found: list visible processes with `triage proc`"},
		{"permission denied needs no hint",
			wrap("explain", status.Error(codes.PermissionDenied, "spiffe://x has no role granting VIEW: add a binding")),
			"explain: PermissionDenied: spiffe://x has no role granting VIEW: add a binding"},
		{"transport wrapping stripped, unreachable hint",
			wrap("explain", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:7070: connect: connection refused"`)),
			"explain: Unavailable: dial tcp 127.0.0.1:7070: connect: connection refused: is the sidecar running at 127.0.0.1:7070? in Kubernetes, port-forward first (kubectl port-forward pod/POD 7070)"},
		{"untrusted server certificate",
			wrap("explain", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`)),
			"explain: Unavailable: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority: the sidecar's certificate was not trusted: check --ca / --dev (the CA must have signed the sidecar's certificate) and --server-name"},
		{"client certificate rejected",
			wrap("explain", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: remote error: tls: unknown certificate authority"`)),
			"explain: Unavailable: authentication handshake failed: remote error: tls: unknown certificate authority: the sidecar refused the client certificate: check --cert/--key (or --dev) and that its CA is the sidecar's --client-ca"},
		{"plaintext against TLS",
			wrap("explain", status.Error(codes.Unavailable, "connection error: desc = \"error reading server preface: EOF\"")),
			"explain: Unavailable: error reading server preface: EOF: the two ends disagree on TLS: against a TLS sidecar drop --insecure and pass --dev or --ca/--cert/--key; against --insecure-local pass --insecure"},
		{"plaintext to a remote address",
			wrap("explain", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: local credentials rejected connection to non-local address 10.0.0.1:7070"`)),
			"explain: Unavailable: authentication handshake failed: local credentials rejected connection to non-local address 10.0.0.1:7070: plaintext (--insecure, or a unix socket without TLS flags) reaches only loopback and Unix sockets; use TLS with --ca/--cert/--key or --dev"},
		{"deadline without server message",
			wrap("explain", status.Error(codes.DeadlineExceeded, "context deadline exceeded")),
			"explain: DeadlineExceeded: context deadline exceeded: no answer in time: raise --timeout, and check that 127.0.0.1:7070 is a triage sidecar"},
		{"bare context error",
			wrap("connect", context.Canceled),
			"connect: Canceled: context canceled"},
		{"unknown service",
			wrap("list processes", status.Error(codes.Unimplemented, "unknown service triage.v1.ProcessService")),
			"list processes: Unimplemented: unknown service triage.v1.ProcessService: the capability is off or the sidecar is older than this client: `triage explain` lists the capabilities and why each is off"},
		{"multi-line message becomes one line",
			wrap("explain", status.Error(codes.Internal, "first\n  second")),
			"explain: Internal: first second"},
		{"local error has no code",
			wrap("connect", errors.New("TLS: read client certificate: open c.pem: no such file or directory")),
			"connect: TLS: read client certificate: open c.pem: no such file or directory"},
		{"wrapped client error",
			fmt.Errorf("proc: %w", wrap("list processes", status.Error(codes.Internal, "boom"))),
			"list processes: Internal: boom"},
		{"server's Unavailable gets no connection hint",
			wrap("profile wall", status.Error(codes.Unavailable, "the agent at /var/run/triage/agent.sock did not answer: is the app running?")),
			"profile wall: Unavailable: the agent at /var/run/triage/agent.sock did not answer: is the app running?"},
		{"wrapped stream error keeps the server's message",
			wrap("profile cpu", fmt.Errorf("receive artifact after 0 bytes: %w", status.Error(codes.ResourceExhausted, "a cpu profile is running: wait"))),
			"profile cpu: ResourceExhausted: a cpu profile is running: wait"},
		{"plain status without op",
			status.Error(codes.ResourceExhausted, "too many calls in flight: retry"),
			"ResourceExhausted: too many calls in flight: retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := client.Describe(tt.err); got != tt.want {
				t.Errorf("Describe =\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}

func TestErrorKeepsStatus(t *testing.T) {
	inner := status.Error(codes.NotFound, "pid 7 not found")
	err := fmt.Errorf("context: %w", &client.Error{Op: "get process 7", Err: inner})
	if got := status.Code(err); got != codes.NotFound {
		t.Errorf("status.Code = %v, want NotFound", got)
	}
	s, ok := status.FromError(&client.Error{Op: "get process 7", Err: inner})
	if !ok || s.Message() != "pid 7 not found" {
		t.Errorf("FromError = %v, %v; want the server's message", s, ok)
	}
	if !errors.Is(err, inner) {
		t.Error("errors.Is does not reach the gRPC error")
	}
	if got := status.Code(&client.Error{Op: "connect", Err: context.DeadlineExceeded}); got != codes.DeadlineExceeded {
		t.Errorf("context error code = %v, want DeadlineExceeded", got)
	}
	if got := status.Code(&client.Error{Op: "connect", Err: errors.New("no file")}); got != codes.Unknown {
		t.Errorf("plain error code = %v, want Unknown", got)
	}
}
