package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/triage-sh/triage/sidecar"
)

// runHealthcheck is `triage-sidecar healthcheck`: the exec probe the
// injector gives the sidecar container. The kubelet's own gRPC probe dials
// the pod IP in plaintext, while the sidecar listens on loopback (or a Unix
// socket) with TLS, so the probe runs inside the container instead. It asks
// grpc.health.v1, the one method open without credentials, and succeeds when
// the sidecar is SERVING.
func runHealthcheck(args []string, stdout io.Writer) error {
	var (
		addr, unixSocket string
		timeout          time.Duration
	)
	fs := newFlagSet("healthcheck")
	fs.StringVar(&addr, "addr", sidecar.DefaultAddr, "the sidecar's TCP address (also TRIAGE_ADDR)")
	fs.StringVar(&unixSocket, "unix-socket", "", "ask over this Unix socket instead (also TRIAGE_UNIX_SOCKET)")
	fs.DurationVar(&timeout, "timeout", 2*time.Second, "give up after this long")
	usage := func() {
		fmt.Fprintf(stdout, "exit 0 when the sidecar at --addr (or --unix-socket) answers health SERVING; for exec probes\n\nUsage:\n  triage-sidecar healthcheck [flags]\n\nFlags:\n%s", fs.FlagUsages())
	}
	if done, err := parse(fs, args, usage); done || err != nil {
		return err
	}
	if !fs.Changed("addr") {
		if v, ok := os.LookupEnv("TRIAGE_ADDR"); ok {
			addr = v
		}
	}
	if !fs.Changed("unix-socket") {
		unixSocket = os.Getenv("TRIAGE_UNIX_SOCKET")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return healthcheck(ctx, addr, unixSocket)
}

// healthcheck asks over TLS first (the sidecar's certificate is not
// verified: the probe sends nothing secret and only reads a status), then in
// plaintext (a sidecar run with --insecure-local).
func healthcheck(ctx context.Context, addr, unixSocket string) error {
	target := "passthrough:///" + addr
	if unixSocket != "" {
		target = "unix://" + unixSocket
	} else if addr == "" {
		return fmt.Errorf("healthcheck: no --addr and no --unix-socket")
	}
	tlsCreds := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) // #nosec G402 -- a liveness probe of the container's own listener
	var lastErr error
	if unixSocket == "" && requiresClientCert(ctx, addr) {
		// A sidecar that takes mTLS only (no --tokens-file) refuses the
		// handshake of a caller without a certificate before any gRPC, even
		// for health; its TLS listener answering and asking for one is the
		// liveness signal then.
		return nil
	}
	for _, creds := range []credentials.TransportCredentials{tlsCreds, insecure.NewCredentials()} {
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
		conn.Close()
		if err == nil {
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("healthcheck: the sidecar at %s is %s", target, resp.GetStatus())
			}
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("healthcheck: the sidecar at %s does not answer: %w", target, lastErr)
}

// requiresClientCert reports whether addr completes a TLS handshake and
// then refuses the connection because no client certificate was sent (TLS
// 1.3 alert certificate_required), i.e. a live sidecar that takes mTLS only.
func requiresClientCert(ctx context.Context, addr string) bool {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}} // #nosec G402 -- see healthcheck
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	_, err = c.Read(make([]byte, 1))
	return err != nil && strings.Contains(err.Error(), "certificate required")
}
