package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"

	"github.com/triage-sh/triage/sidecar/capability"
)

// Identity is an authenticated caller; capabilities read it with
// capability.IdentityFrom.
type Identity = capability.Identity

func withIdentity(ctx context.Context, id Identity) context.Context {
	return capability.WithIdentity(ctx, id)
}

// IdentityFrom returns the caller's identity, set by the server's
// interceptors before any handler runs.
func IdentityFrom(ctx context.Context) (Identity, bool) { return capability.IdentityFrom(ctx) }

// unixPeerInfo is the AuthInfo of a plaintext Unix-socket connection: the
// kernel's SO_PEERCRED says who is on the other end, which no client can forge.
type unixPeerInfo struct {
	credentials.CommonAuthInfo
	UID, GID uint32
	PID      int32
}

func (unixPeerInfo) AuthType() string { return "unix-peer" }

// plainInfo is the AuthInfo of a plaintext loopback TCP connection.
type plainInfo struct{ credentials.CommonAuthInfo }

func (plainInfo) AuthType() string { return "insecure-local" }

// localCreds are the transport credentials of --insecure-local: plaintext on
// loopback TCP (callers then authenticate with bearer tokens) and on Unix
// sockets (callers are also identified by their uid). The listeners are
// checked to be local before the server starts.
type localCreds struct{}

func (localCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, plainInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (localCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := unwrapConn(c).(*net.UnixConn)
	if !ok {
		return c, plainInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("unix peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, nil, fmt.Errorf("unix peer credentials: %w", err)
	}
	if credErr != nil {
		return nil, nil, fmt.Errorf("unix peer credentials: %w", credErr)
	}
	return c, unixPeerInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		UID:            cred.Uid, GID: cred.Gid, PID: cred.Pid,
	}, nil
}

func (localCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure-local"}
}
func (c localCreds) Clone() credentials.TransportCredentials { return c }
func (localCreds) OverrideServerName(string) error           { return nil }

// tlsOnlyListener marks the connections of --tls-addr, which listenerCreds
// serves with TLS whatever else the server allows.
type tlsOnlyListener struct{ net.Listener }

func (l tlsOnlyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tlsOnlyConn{c}, nil
}

type tlsOnlyConn struct{ net.Conn }

// Unwrap returns the underlying connection.
func (c tlsOnlyConn) Unwrap() net.Conn { return c.Conn }

// listenerCreds are the transport credentials of a sidecar that serves
// plaintext on loopback (--insecure-local; port-forwards arrive there) and
// TLS on --tls-addr (the pod IP): which one a connection gets is decided by
// the listener that accepted it, never by what the client sends.
type listenerCreds struct {
	tls credentials.TransportCredentials
}

func (c listenerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if _, ok := conn.(tlsOnlyConn); ok {
		return c.tls.ServerHandshake(conn)
	}
	return localCreds{}.ServerHandshake(conn)
}

func (c listenerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("listenerCreds are for servers")
}

func (c listenerCreds) Info() credentials.ProtocolInfo { return c.tls.Info() }
func (c listenerCreds) Clone() credentials.TransportCredentials {
	return listenerCreds{tls: c.tls.Clone()}
}
func (listenerCreds) OverrideServerName(string) error { return nil }
