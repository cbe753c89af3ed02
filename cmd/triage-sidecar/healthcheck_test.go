package main

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/triage-sh/triage/sidecar"
	"github.com/triage-sh/triage/sidecar/sidecartest"
)

// serve starts a real sidecar in this process with o and returns its address.
func serve(t *testing.T, o sidecar.Options) string {
	t.Helper()
	o.ReloadInterval = 0
	srv := sidecartest.Serve(t, sidecar.Config{Options: o, Logger: slog.New(slog.DiscardHandler), AuditWriter: io.Discard})
	return srv.Addrs()[0].String()
}

// TestHealthcheck runs `triage-sidecar healthcheck`, the injected sidecar's
// exec probe, as a child process against real sidecars: mTLS (development
// mode), plaintext (--insecure-local), and nothing listening.
func TestHealthcheck(t *testing.T) {
	tlsOpts := sidecar.DefaultOptions()
	tlsOpts.Dev, tlsOpts.Addr = t.TempDir(), "127.0.0.1:0"
	tlsAddr := serve(t, tlsOpts)

	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	plainOpts := sidecar.DefaultOptions()
	plainOpts.Addr, plainOpts.InsecureLocal, plainOpts.TokensFile = "127.0.0.1:0", true, tokens
	plainAddr := serve(t, plainOpts)

	// With tokens, client certificates are optional: health is asked over TLS.
	tokOpts := sidecar.DefaultOptions()
	tokOpts.Dev, tokOpts.Addr, tokOpts.TokensFile = t.TempDir(), "127.0.0.1:0", tokens
	tokAddr := serve(t, tokOpts)

	// Something that accepts and hangs up is not a sidecar.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"mtls sidecar", nil, []string{"healthcheck", "--addr", tlsAddr}, 0, ""},
		{"plaintext sidecar", nil, []string{"healthcheck", "--addr", plainAddr}, 0, ""},
		{"tls sidecar with tokens", nil, []string{"healthcheck", "--addr", tokAddr}, 0, ""},
		{"not a sidecar", nil, []string{"healthcheck", "--addr", other.Addr().String(), "--timeout", "1s"}, 1, "does not answer"},
		{"address from TRIAGE_ADDR", []string{"TRIAGE_ADDR=" + tlsAddr}, []string{"healthcheck"}, 0, ""},
		{"nothing listening", nil, []string{"healthcheck", "--addr", closed, "--timeout", "1s"}, 1, "does not answer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := runBinary(t, c.env, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, stderr, c.code, c.want)
			}
		})
	}
}
