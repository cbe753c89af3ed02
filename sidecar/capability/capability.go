// Package capability is the contract between the sidecar's server and the
// capability packages under sidecar/. A capability registers its gRPC service
// on a grpc.ServiceRegistrar, the way grpc-go's admin.Register does; it knows
// nothing of listeners, authentication or audit. The permission of each of its
// methods is declared in the .proto with the (triage.v1.permission) option.
package capability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Deps are what the server hands every capability.
type Deps struct {
	// ProcRoot is the proc filesystem root, normally "/proc".
	ProcRoot string
	// CgroupRoot is the cgroup v2 root, normally "/sys/fs/cgroup".
	CgroupRoot string
	// Logger is the sidecar's operational log (not the audit log).
	Logger *slog.Logger
	// Server describes the running server to capabilities that explain it.
	Server ServerInfo
	// Contribute adds a part to every explanation.
	Contribute func(Contributor)
}

// ServerInfo is the server's view of itself, for explain.
type ServerInfo interface {
	// Build is the sidecar's build.
	Build() *triagev1.Build
	// Settings are the effective settings with their sources, secrets redacted.
	Settings() []*triagev1.Setting
	// Auth describes the auth modes and the caller of ctx.
	Auth(ctx context.Context) *triagev1.Auth
	// Capabilities are the statuses of every capability in the table.
	Capabilities() []*triagev1.Capability
	// Certificates are the TLS certificates in effect.
	Certificates() []*triagev1.Certificate
	// Contributors are the capabilities' parts of an explanation.
	Contributors() []Contributor
}

// ChunkBytes is the data an artifact chunk carries at most. The artifact
// convention allows 64 KiB, but a chunk message must stay, with its
// protobuf and gRPC framing, inside grpc-go's 32 KiB buffer-pool tier: one
// byte over and every message takes (and zeroes) a buffer from the 1 MiB
// tier, which cost about 10% of the sidecar's CPU and 10 MiB of peak RSS
// streaming a bulk-TCP capture.
const ChunkBytes = 32<<10 - 256

// Identity is an authenticated caller.
type Identity struct {
	// Name is the SPIFFE URI, DNS SAN, CN, token identity or "uid:N".
	Name string
	// Method is "mtls", "token" or "unix-peer".
	Method string
}

type identityKey struct{}

// WithIdentity returns ctx carrying id; only the server's guard calls it.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the caller of the RPC whose context ctx is.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// Contributor adds a capability's part to an explanation: a section of the
// response (the app, Envoy) and findings. It runs on every Explain call and
// must bound its own time with ctx.
type Contributor func(ctx context.Context, resp *triagev1.ExplainResponse)

// Capability is one row of the sidecar's capability table.
type Capability struct {
	// Name is short and stable: "explain", "process", "capture".
	Name string
	// AddFlags, when set, registers the capability's own settings (flags,
	// TRIAGE_* variables and config-file keys); they are explained like the
	// server's.
	AddFlags func(fs *pflag.FlagSet)
	// Register registers the capability's services on s. It returns an
	// *OffError when the capability cannot run here; it is then not
	// registered, callers get Unimplemented, and explain says why.
	// cleanup, when not nil, runs at server shutdown.
	Register func(s grpc.ServiceRegistrar, d Deps) (cleanup func(), err error)
}

// OffError says a capability cannot run here, why, and what turns it on.
type OffError struct {
	Reason string
	Fix    string
}

func (e *OffError) Error() string {
	if e.Fix == "" {
		return "off: " + e.Reason
	}
	return fmt.Sprintf("off: %s; %s", e.Reason, e.Fix)
}

// Off returns an *OffError.
func Off(reason, fix string) error { return &OffError{Reason: reason, Fix: fix} }

// AsOff reports whether err says the capability is off.
func AsOff(err error) (*OffError, bool) {
	var off *OffError
	ok := errors.As(err, &off)
	return off, ok
}
