package sidecar

import (
	"time"

	"github.com/spf13/pflag"
)

// Options configure the sidecar. Every field is a setting: a flag, a
// TRIAGE_* environment variable and a configuration-file key (see
// internal/config), registered by AddFlags.
type Options struct {
	// Addr is the TCP listen address; "" disables TCP.
	Addr string
	// UnixSocket is a Unix socket path to listen on; "" disables it.
	UnixSocket string
	// TLSCert and TLSKey are the server certificate and key files.
	TLSCert, TLSKey string
	// ClientCA is the CA bundle client certificates must chain to.
	ClientCA string
	// TokensFile lists SHA-256 hashes of bearer tokens with identities.
	TokensFile string
	// PolicyFile maps identities to roles.
	PolicyFile string
	// AuditLog is "stderr" or a file path.
	AuditLog string
	// InsecureLocal allows plaintext, only on loopback or a Unix socket.
	InsecureLocal bool
	// Dev is a development-mode directory: certificates and a policy are made there once.
	Dev string
	// MaxConcurrentStreams bounds the streams of one connection.
	MaxConcurrentStreams uint32
	// MaxInflight bounds the calls in flight across all connections.
	MaxInflight int
	// MaxConnections bounds open connections per listener.
	MaxConnections int
	// MaxRecvMsgBytes bounds a request message.
	MaxRecvMsgBytes int
	// MaxSendMsgBytes bounds a response message.
	MaxSendMsgBytes int
	// KeepaliveMinTime is the shortest client ping interval allowed.
	KeepaliveMinTime time.Duration
	// KeepaliveTime is how often the server pings an idle connection.
	KeepaliveTime time.Duration
	// HandshakeTimeout bounds the TLS handshake of a new connection.
	HandshakeTimeout time.Duration
	// ProcRoot is the proc filesystem.
	ProcRoot string
	// CgroupRoot is the cgroup v2 filesystem.
	CgroupRoot string
	// ReloadInterval is how often certificate, token and policy files are checked for changes.
	ReloadInterval time.Duration
}

// DefaultAddr is where the sidecar listens unless told otherwise: loopback,
// reached from outside the pod through the API server's port-forward.
const DefaultAddr = "127.0.0.1:7070"

// AddFlags registers every option on fs with its default.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Addr, "addr", DefaultAddr, "TCP listen address (host:port); empty disables TCP")
	fs.StringVar(&o.UnixSocket, "unix-socket", "", "also listen on this Unix socket path")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "server certificate (PEM), reloaded when it changes")
	fs.StringVar(&o.TLSKey, "tls-key", "", "server private key (PEM), reloaded when it changes")
	fs.StringVar(&o.ClientCA, "client-ca", "", "CA bundle (PEM) that client certificates must chain to (mTLS)")
	fs.StringVar(&o.TokensFile, "tokens-file", "", "bearer tokens: lines of 'sha256:<hex> <identity>', re-read when it changes")
	fs.StringVar(&o.PolicyFile, "policy-file", "", "authorization policy (YAML) mapping identities to roles; without one every call is denied")
	fs.StringVar(&o.AuditLog, "audit-log", "stderr", "where audit records go: stderr or a file path")
	fs.BoolVar(&o.InsecureLocal, "insecure-local", false, "serve plaintext; allowed only on loopback or a Unix socket")
	fs.StringVar(&o.Dev, "dev", "", "development mode: make a CA, certificates and a policy in this directory once, and serve mTLS on loopback")
	fs.Uint32Var(&o.MaxConcurrentStreams, "max-concurrent-streams", 64, "maximum concurrent streams per connection")
	fs.IntVar(&o.MaxInflight, "max-inflight", 256, "maximum calls in flight across all connections")
	fs.IntVar(&o.MaxConnections, "max-connections", 128, "maximum open connections per listener")
	fs.IntVar(&o.MaxRecvMsgBytes, "max-recv-msg-bytes", 1<<20, "maximum request message size")
	fs.IntVar(&o.MaxSendMsgBytes, "max-send-msg-bytes", 4<<20, "maximum response message size")
	fs.DurationVar(&o.KeepaliveMinTime, "keepalive-min-time", 10*time.Second, "shortest client keepalive ping interval allowed")
	fs.DurationVar(&o.KeepaliveTime, "keepalive-time", 30*time.Second, "server ping interval on idle connections")
	fs.DurationVar(&o.HandshakeTimeout, "handshake-timeout", 10*time.Second, "TLS handshake deadline for new connections")
	fs.StringVar(&o.ProcRoot, "proc-root", "/proc", "proc filesystem root")
	fs.StringVar(&o.CgroupRoot, "cgroup-root", "/sys/fs/cgroup", "cgroup v2 filesystem root")
	fs.DurationVar(&o.ReloadInterval, "reload-interval", time.Second, "how often certificate, token and policy files are checked for changes")
}

// DefaultOptions returns the options with their defaults, as AddFlags sets them.
func DefaultOptions() Options {
	var o Options
	o.AddFlags(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	return o
}
