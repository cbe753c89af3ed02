package sidecar

import (
	"crypto/tls"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/triage-sh/triage/internal/auth"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// TestTLSAddr: with --insecure-local and --tls-addr the loopback --addr
// serves plaintext (port-forwards) and --tls-addr serves TLS only (the pod
// IP, for --direct); which one a connection gets is the listener's choice:
// plaintext to the TLS address and TLS to the plaintext one both fail, and
// bearer tokens and client certificates work over TLS.
func TestTLSAddr(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, p, func(o *Options) {
		o.InsecureLocal, o.TLSAddr = true, "127.0.0.1:0"
	})
	addrs := s.srv.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("listening on %v; want --addr and --tls-addr", addrs)
	}
	plain, tlsAddr := addrs[0].String(), addrs[1].String()
	explain := func(target string, useTLS bool, id, tok string) error {
		var cfg *tls.Config
		if useTLS {
			cfg = p.clientTLS(t, id, nil, auth.IssueOptions{})
		}
		_, err := triagev1.NewExplainServiceClient(dial(t, target, cfg, tok)).Explain(testCtx(t), &triagev1.ExplainRequest{})
		return err
	}
	if err := explain(plain, false, "", tokViewer); err != nil {
		t.Errorf("plaintext on the loopback --addr: %v", err)
	}
	if err := explain(tlsAddr, true, "", tokViewer); err != nil {
		t.Errorf("token over TLS on --tls-addr: %v", err)
	}
	if err := explain(tlsAddr, true, idViewer, ""); err != nil {
		t.Errorf("client certificate on --tls-addr: %v", err)
	}
	if err := explain(tlsAddr, false, "", tokViewer); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext to --tls-addr: %v; want the connection refused (Unavailable)", err)
	}
	if err := explain(plain, true, "", tokViewer); status.Code(err) != codes.Unavailable {
		t.Errorf("TLS to the plaintext --addr: %v; want the connection refused (Unavailable)", err)
	}
	if err := explain(tlsAddr, true, "", ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no credentials on --tls-addr: %v; want Unauthenticated", err)
	}
}
