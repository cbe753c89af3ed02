package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/triage-sh/triage/sidecar"
	"github.com/triage-sh/triage/sidecar/sidecartest"
)

// testTimeout bounds every test's context.
const testTimeout = 30 * time.Second

// testContext returns a context cancelled when the test ends or after testTimeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startSidecar starts a real sidecar in-process in development mode on
// 127.0.0.1:0 with a fresh dev directory, after mutate adjusts the options,
// and returns its TCP address (or "" when it has none) and the dev dir.
// It stops when the test ends.
func startSidecar(t *testing.T, mutate func(o *sidecar.Options)) (addr, dev string) {
	t.Helper()
	dev = t.TempDir()
	o := sidecar.DefaultOptions()
	o.Dev = dev
	o.Addr = "127.0.0.1:0"
	o.ReloadInterval = 0
	if mutate != nil {
		mutate(&o)
	}
	srv := sidecartest.Serve(t, sidecar.Config{Options: o, Logger: slog.New(slog.DiscardHandler), AuditWriter: discard{}})
	for _, a := range srv.Addrs() {
		if a.Network() == "tcp" {
			addr = a.String()
		}
	}
	return addr, dev
}

// discard is an io.Writer that drops audit records.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// writeTokens writes a token and a tokens file binding it to identity, and
// a policy granting identity and every unix uid the viewer role. It
// returns the token file (for the client), the tokens file and the policy
// (for the sidecar).
func writeTokens(t *testing.T, token, identity string) (tokenFile, tokensFile, policy string) {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256([]byte(token))
	tokenFile = filepath.Join(dir, "token")
	tokensFile = filepath.Join(dir, "tokens")
	policy = filepath.Join(dir, "policy.yaml")
	write(t, tokenFile, token+"\n")
	write(t, tokensFile, "sha256:"+hex.EncodeToString(sum[:])+" "+identity+"\n")
	write(t, policy, "bindings:\n  - identities: [\""+identity+"\", \"uid:*\"]\n    roles: [viewer]\n")
	return tokenFile, tokensFile, policy
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
