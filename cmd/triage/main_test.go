package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/triage-sh/triage/sidecar"
	"github.com/triage-sh/triage/sidecar/sidecartest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// result is what one in-process run of the command produced.
type result struct {
	code           int
	stdout, stderr string
}

// triage runs the command in-process with args and the environment vars
// (stdout not a terminal unless terminal is set).
func triage(t *testing.T, vars map[string]string, terminal bool, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, env{
		stdout:   &out,
		stderr:   &errb,
		getenv:   func(k string) string { return vars[k] },
		terminal: terminal,
	})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// oneErrorLine checks that stderr is exactly one line starting with prefix.
func oneErrorLine(t *testing.T, r result, prefix string) {
	t.Helper()
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr is not exactly one line: %q", r.stderr)
	}
	if !strings.HasPrefix(r.stderr, prefix) {
		t.Errorf("stderr = %q, want it to start with %q", r.stderr, prefix)
	}
}

// startSidecar starts a real sidecar in-process in development mode on
// 127.0.0.1:0 with a fresh dev directory and returns its address and the
// directory. It stops when the test ends.
func startSidecar(t *testing.T) (addr, dev string) {
	t.Helper()
	dev = t.TempDir()
	o := sidecar.DefaultOptions()
	o.Dev = dev
	o.Addr = "127.0.0.1:0"
	o.ReloadInterval = 0
	srv := sidecartest.Serve(t, sidecar.Config{Options: o, Logger: slog.New(slog.DiscardHandler), AuditWriter: discard{}})
	return srv.Addrs()[0].String(), dev
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
