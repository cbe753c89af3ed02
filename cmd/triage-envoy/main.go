// Command triage-envoy is the sidecar's Envoy worker: it serves EnvoyService
// (package sidecar/envoy/worker) on a socket its parent, triage-sidecar,
// hands it as descriptor 3, and exits when the parent closes that socket
// (after --envoy-worker-idle without Envoy calls, or at shutdown) or dies.
// It is a process of its own so that the Envoy API types it links (about
// 12 MiB of RSS from process start) cost nothing while nobody asks about
// Envoy. Authentication, authorization and audit stay in the sidecar: the
// socket pair reaches nobody else.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
	"github.com/triage-sh/triage/sidecar/envoy"
	"github.com/triage-sh/triage/sidecar/envoy/worker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "triage-envoy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o := envoy.DefaultOptions()
	fs := pflag.NewFlagSet("triage-envoy", pflag.ContinueOnError)
	o.AddFlags(fs)
	fd := fs.Int("fd", 3, "descriptor of the socket to serve on (the sidecar passes one end of a socket pair)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f := os.NewFile(uintptr(*fd), "sidecar")
	if f == nil {
		return fmt.Errorf("no descriptor %d: triage-envoy is started by triage-sidecar, not by hand", *fd)
	}
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("descriptor %d is not a socket (triage-envoy is started by triage-sidecar): %w", *fd, err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "triage-envoy")
	srv, cleanup, err := worker.New(o, logger)
	if err != nil {
		nc.Close()
		return err
	}
	defer cleanup()
	gs := grpc.NewServer(
		grpc.MaxRecvMsgSize(16<<20),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(withCaller(ctx), req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, callerStream{ss})
		}),
	)
	triagev1.RegisterEnvoyServiceServer(gs, srv)
	l := newOneConnListener(nc)
	go func() {
		<-l.done // the sidecar closed its end, or died
		gs.Stop()
	}()
	if err := gs.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// withCaller carries the sidecar's authenticated caller into the context,
// for the worker's log of mutations.
func withCaller(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(envoy.MetadataIdentity); len(v) == 1 {
		method := ""
		if m := md.Get(envoy.MetadataAuthMethod); len(m) == 1 {
			method = m[0]
		}
		return capability.WithIdentity(ctx, capability.Identity{Name: v[0], Method: method})
	}
	return ctx
}

type callerStream struct{ grpc.ServerStream }

func (s callerStream) Context() context.Context { return withCaller(s.ServerStream.Context()) }

// oneConnListener yields one connection, then blocks until that
// connection is closed.
type oneConnListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{conns: make(chan net.Conn, 1), done: make(chan struct{}), addr: c.LocalAddr()}
	l.conns <- &watchedConn{Conn: c, closed: l.close}
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) close()         { l.once.Do(func() { close(l.done) }) }
func (l *oneConnListener) Close() error   { l.close(); return nil }
func (l *oneConnListener) Addr() net.Addr { return l.addr }

// watchedConn tells the listener when gRPC closes the connection (its peer
// went away).
type watchedConn struct {
	net.Conn
	closed func()
}

func (c *watchedConn) Close() error {
	err := c.Conn.Close()
	c.closed()
	return err
}
