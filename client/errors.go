package client

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failed client operation. It keeps the gRPC status of the
// underlying error: status.Code and status.FromError see through it.
type Error struct {
	// Op is what failed, e.g. "explain" or "get process 42".
	Op string
	// Addr is the sidecar's address.
	Addr string
	// Err is the underlying error, usually a gRPC status error.
	Err error
}

// Error implements error.
func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// GRPCStatus returns the underlying error's status, so status.FromError and
// status.Code report the server's code and message, not Unknown. An error
// without a status (a missing certificate file) reports Unknown; a context
// error reports Canceled or DeadlineExceeded.
func (e *Error) GRPCStatus() *status.Status {
	if s, ok := innerStatus(e.Err); ok {
		return s
	}
	if errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded) {
		return status.FromContextError(e.Err)
	}
	return status.New(codes.Unknown, e.Err.Error())
}

// Describe renders err as one line for a human: what failed, the gRPC code
// and what to do, e.g.
//
//	get process 7: NotFound: pid 7 not found: ... list visible processes with `triage proc` ...
//	explain: Unavailable: dial tcp 127.0.0.1:7070: connect: connection refused: is the sidecar running at 127.0.0.1:7070? ...
//
// The server's messages already say what to do; Describe adds a hint where
// the failure is the client's side of the connection (sidecar unreachable,
// certificate rejected, plaintext against TLS, timeout). An error that has
// no gRPC status (a missing file) is rendered without a code.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	var op, addr string
	inner := err
	var ce *Error
	if errors.As(err, &ce) {
		op, addr, inner = ce.Op, ce.Addr, ce.Err
	}
	var b strings.Builder
	if op != "" {
		b.WriteString(op)
		b.WriteString(": ")
	}
	s, isStatus := innerStatus(inner)
	if !isStatus {
		if errors.Is(inner, context.Canceled) || errors.Is(inner, context.DeadlineExceeded) {
			s, isStatus = status.FromContextError(inner), true
		}
	}
	if !isStatus {
		b.WriteString(oneLine(inner.Error()))
		return b.String()
	}
	msg := cleanMessage(s.Message())
	b.WriteString(s.Code().String())
	if msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	if s.Code() == codes.Unavailable && !isTransport(s.Message()) {
		return b.String() // the server's own message, e.g. the agent is unreachable
	}
	if h := hint(s.Code(), msg, addr); h != "" {
		b.WriteString(": ")
		b.WriteString(h)
	}
	return b.String()
}

// innerStatus is the status of the innermost gRPC status error err wraps.
// status.FromError on a wrapped error puts the whole err.Error() text in
// the message; this keeps the server's own message.
func innerStatus(err error) (*status.Status, bool) {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		if s := se.GRPCStatus(); s != nil {
			return s, true
		}
	}
	return status.FromError(err)
}

// isTransport reports whether an Unavailable message comes from the
// client's side of the connection (dial, TLS, transport) rather than from
// the sidecar, which says Unavailable when the agent or Envoy is down.
func isTransport(msg string) bool {
	lower := strings.ToLower(msg)
	if lower == "" {
		return true
	}
	for _, s := range []string{"connection error", "transport", "dial", "connection closed", "server preface", "reading from server", "resolver", "connection refused", "eof", "closing", "handshake", "x509", "tls:"} {
		if strings.Contains(lower, s) {
			return true
		}
	}
	return false
}

// hint says what to do about failures on the client's side of the
// connection; the server's own messages need none.
func hint(code codes.Code, msg, addr string) string {
	lower := strings.ToLower(msg)
	where := "the sidecar"
	if addr != "" {
		where = "the sidecar running at " + addr
	}
	switch code {
	case codes.Unavailable:
		switch {
		case strings.Contains(lower, "non-local address"):
			return "plaintext (--insecure, or a unix socket without TLS flags) reaches only loopback and Unix sockets; use TLS with --ca/--cert/--key or --dev"
		case isClientCertRejected(lower):
			return "the sidecar refused the client certificate: check --cert/--key (or --dev) and that its CA is the sidecar's --client-ca"
		case isCertificateError(lower):
			return "the sidecar's certificate was not trusted: check --ca / --dev (the CA must have signed the sidecar's certificate) and --server-name"
		case strings.Contains(lower, "server preface") || strings.Contains(lower, "http2") || strings.Contains(lower, "first record does not look like a tls handshake"):
			return "the two ends disagree on TLS: against a TLS sidecar drop --insecure and pass --dev or --ca/--cert/--key; against --insecure-local pass --insecure"
		default:
			return "is " + where + "? in Kubernetes, port-forward first (kubectl port-forward pod/POD 7070)"
		}
	case codes.DeadlineExceeded:
		if msg == "" || strings.Contains(lower, "context deadline exceeded") {
			return "no answer in time: raise --timeout, and check that " + orDefault(addr, "the address") + " is a triage sidecar"
		}
	case codes.Unimplemented:
		if strings.Contains(lower, "unknown service") || strings.Contains(lower, "unknown method") {
			return "the capability is off or the sidecar is older than this client: `triage explain` lists the capabilities and why each is off"
		}
	}
	return ""
}

// isCertificateError reports whether msg is a failure to verify the
// sidecar's certificate.
func isCertificateError(msg string) bool {
	for _, s := range []string{"x509:", "certificate", "tls: ", "authentication handshake failed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// isClientCertRejected reports whether the sidecar rejected the client's
// certificate (a TLS alert from the server).
func isClientCertRejected(msg string) bool {
	for _, s := range []string{"remote error: tls: bad certificate", "remote error: tls: unknown certificate", "remote error: tls: certificate required", "remote error: tls: expired certificate"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// cleanMessage strips gRPC's transport wrapping from a message and makes it
// one line: `connection error: desc = "transport: Error while dialing: dial
// tcp ...: connection refused"` becomes `dial tcp ...: connection refused`.
func cleanMessage(msg string) string {
	msg = strings.TrimSpace(msg)
	if rest, ok := strings.CutPrefix(msg, "connection error: desc = "); ok {
		if u, err := strconv.Unquote(rest); err == nil {
			rest = u
		}
		msg = rest
	}
	msg = strings.TrimPrefix(msg, "transport: ")
	msg = strings.TrimPrefix(msg, "Error while dialing: ")
	msg = strings.TrimPrefix(msg, "error while dialing: ")
	return oneLine(msg)
}

// oneLine collapses runs of white space, newlines included, to one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
