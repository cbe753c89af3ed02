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
	// TLSAddr is a second TCP address served with TLS only (--tls-cert,
	// --tls-key), e.g. the pod IP, while Addr may stay plaintext on
	// loopback (--insecure-local); "" disables it.
	TLSAddr string
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
	// ReleaseMemoryIdle is how long calls must have stopped before the
	// memory a busy period left is returned to the OS (at most once per 10s,
	// and only after 1 MiB was allocated since the last time); 0 leaves it
	// to the Go runtime, which holds it until its next collection.
	ReleaseMemoryIdle time.Duration
	// KubeAuth accepts Kubernetes ServiceAccount tokens: "jwks" (verified
	// offline against the cluster's keys; roles from the tier
	// ServiceAccounts and the policy file), "tokenreview" (TokenReview and
	// SubjectAccessReview, as the kubelet does) or "" (off).
	KubeAuth string
	// KubeAudience is triage's token audience.
	KubeAudience string
	// KubeAPIServer is the API server's URL; "" is the in-cluster one
	// (KUBERNETES_SERVICE_HOST and _PORT).
	KubeAPIServer string
	// KubeCAFile is the API server's CA bundle.
	KubeCAFile string
	// KubeTokenFile is the sidecar's own token for the API server.
	KubeTokenFile string
	// KubeIssuer is the cluster's token issuer; "" discovers it.
	KubeIssuer string
	// KubeTierNamespaces hold the tier ServiceAccounts whose tokens carry
	// roles (the pod's own namespace is added).
	KubeTierNamespaces []string
	// PodName, PodNamespace and PodUID are the sidecar's pod (downward API).
	PodName, PodNamespace, PodUID string
}

// DefaultAddr is where the sidecar listens unless told otherwise: loopback,
// reached from outside the pod through the API server's port-forward.
const DefaultAddr = "127.0.0.1:7070"

// AddFlags registers every option on fs with its default.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Addr, "addr", DefaultAddr, "TCP listen address (host:port); empty disables TCP")
	fs.StringVar(&o.UnixSocket, "unix-socket", "", "also listen on this Unix socket path")
	fs.StringVar(&o.TLSAddr, "tls-addr", "", "also listen here with TLS only (--tls-cert, --tls-key), e.g. :7443 on the pod IP, while --addr may stay plaintext on loopback with --insecure-local")
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
	fs.DurationVar(&o.ReleaseMemoryIdle, "release-memory-idle", time.Second, "once no call has run for this long, return the memory the last busy period left to the OS (at most once per 10s, after 1 MiB was allocated); 0: leave it to the Go runtime")
	fs.StringVar(&o.KubeAuth, "kube-auth", "", "accept Kubernetes ServiceAccount tokens: jwks (offline, against the cluster's keys; roles from the tier ServiceAccounts triage-viewer..triage-operator) or tokenreview (TokenReview + SubjectAccessReview on triage.dev pods/<permission>); empty: off")
	fs.StringVar(&o.KubeAudience, "kube-audience", "triage.dev", "the audience triage's ServiceAccount tokens must carry (never the API server's)")
	fs.StringVar(&o.KubeAPIServer, "kube-api-server", "", "API server URL for the cluster's keys or reviews (default: in-cluster, from KUBERNETES_SERVICE_HOST/PORT)")
	fs.StringVar(&o.KubeCAFile, "kube-ca-file", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "the API server's CA bundle (PEM)")
	fs.StringVar(&o.KubeTokenFile, "kube-token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "the sidecar's own token for the API server (re-read on use: the kubelet rotates it)")
	fs.StringVar(&o.KubeIssuer, "kube-issuer", "", "the cluster's ServiceAccount token issuer (default: discovered from the API server)")
	fs.StringSliceVar(&o.KubeTierNamespaces, "kube-tier-namespaces", []string{"triage-system"}, "namespaces whose tier ServiceAccounts (triage-viewer, -profiler, -capturer, -operator) carry their roles; the pod's own namespace is added")
	fs.StringVar(&o.PodName, "pod-name", "", "this pod's name (downward API; the injector sets TRIAGE_POD_NAME)")
	fs.StringVar(&o.PodNamespace, "pod-namespace", "", "this pod's namespace (downward API; the injector sets TRIAGE_POD_NAMESPACE)")
	fs.StringVar(&o.PodUID, "pod-uid", "", "this pod's UID (downward API; the injector sets TRIAGE_POD_UID)")
}

// DefaultOptions returns the options with their defaults, as AddFlags sets them.
func DefaultOptions() Options {
	var o Options
	o.AddFlags(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	return o
}
