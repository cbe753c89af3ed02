// Package sidecar is triage's admin server: one gRPC server whose every call
// crosses one guard (authentication, default-deny authorization, limits,
// panic recovery, audit), with a table of capabilities that each register
// their own service. See ../shared/DESIGN.md for the security model.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	channelzsvc "google.golang.org/grpc/channelz/service"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/triage-sh/triage/internal/audit"
	"github.com/triage-sh/triage/internal/auth"
	"github.com/triage-sh/triage/internal/config"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar/capability"
)

// Config is everything New needs.
type Config struct {
	// Options are the effective options.
	Options Options
	// Settings are the options' values with their sources, for explain.
	// When nil, every option is reported as its current value from "default".
	Settings []config.Value
	// Capabilities is the capability table; nil means DefaultCapabilities().
	Capabilities []capability.Capability
	// Logger is the operational log; nil discards it.
	Logger *slog.Logger
	// AuditWriter, when set, receives audit records instead of Options.AuditLog.
	AuditWriter io.Writer
}

// Server is a running triage sidecar.
type Server struct {
	opts      Options
	settings  []config.Value
	log       *slog.Logger
	grpc      *grpc.Server
	health    *health.Server
	tls       *auth.ServerTLS
	tokens    *auth.TokensFile
	policy    *auth.PolicyFile
	guard     *guard
	audit     *audit.Logger
	caps      []*triagev1.Capability
	cleanups  []func()
	listeners []net.Listener
	contribs  []capability.Contributor
	closeOnce sync.Once
	view      explainView
}

// certViewTTL is how long the certificates explain shows are reused. They
// change only when a file is reloaded, which is checked at most once per
// --reload-interval (1s by default); describing them (subject and issuer
// names, SANs, serial) on every call was 14% of the bytes an Explain
// allocated, and converting the settings another 24%.
const certViewTTL = time.Second

// explainView is what Explain shows of the server, built once (the
// settings) or at most once per certViewTTL (the certificates) rather than
// on every call. Callers share the messages and must not modify them.
type explainView struct {
	settingsOnce sync.Once
	settings     []*triagev1.Setting

	mu      sync.Mutex
	certsAt time.Time
	certs   []*triagev1.Certificate
}

// New validates the configuration, loads certificates, tokens and policy,
// registers the capabilities and opens the listeners. Any problem stops it
// here, with the file or flag at fault and what to do.
func New(c Config) (_ *Server, err error) {
	s := &Server{opts: c.Options, settings: c.Settings, log: c.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.applyDev(); err != nil {
		return nil, err
	}
	if err := validate(s.opts); err != nil {
		return nil, err
	}
	if c.AuditWriter != nil {
		s.audit = audit.New(c.AuditWriter)
	} else if s.audit, err = audit.Open(s.opts.AuditLog); err != nil {
		return nil, err
	}
	creds, err := s.loadAuth()
	if err != nil {
		return nil, err
	}
	kube, err := newKubeAuth(s.opts)
	if err != nil {
		return nil, err
	}
	g := &guard{tokens: s.tokens, policy: s.policy, kube: kube, audit: s.audit, log: s.log, inflight: make(chan struct{}, s.opts.MaxInflight)}
	s.guard = g
	g.reclaim = newReclaimer(s.opts.ReleaseMemoryIdle, s.log)
	s.grpc = grpc.NewServer(
		grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(g.unary),
		grpc.ChainStreamInterceptor(g.stream),
		grpc.MaxConcurrentStreams(s.opts.MaxConcurrentStreams),
		grpc.MaxRecvMsgSize(s.opts.MaxRecvMsgBytes),
		grpc.MaxSendMsgSize(s.opts.MaxSendMsgBytes),
		grpc.ConnectionTimeout(s.opts.HandshakeTimeout),
		// Admin traffic is small: keep read buffers small (write buffers are
		// shared across connections by default), so a burst of callers costs
		// little memory.
		grpc.ReadBufferSize(16<<10),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: s.opts.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: s.opts.KeepaliveTime, Timeout: 10 * time.Second, MaxConnectionIdle: 30 * time.Minute}),
	)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	// The sidecar's own channelz (its connections, sockets and call counts)
	// for viewers; grpc/admin.Register would also bring in xDS's CSDS.
	channelzsvc.RegisterChannelzServiceToServer(s.grpc)
	if err := s.registerCapabilities(c.Capabilities); err != nil {
		return nil, err
	}
	if g.perms, err = buildPermissions(s.grpc); err != nil {
		return nil, err
	}
	for svc := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// applyDev fills in development-mode certificates and policy.
func (s *Server) applyDev() error {
	o := &s.opts
	if o.Dev == "" {
		return nil
	}
	if o.InsecureLocal {
		return errors.New("--dev serves mTLS; drop --insecure-local")
	}
	files, err := auth.EnsureDev(o.Dev)
	if err != nil {
		return fmt.Errorf("development mode: %w", err)
	}
	for _, f := range files.Created {
		s.log.Info("development mode: created", "file", f)
	}
	origin := "--dev " + o.Dev
	fill := func(name string, field *string, value string) {
		if *field == "" {
			*field = value
			s.settings = config.Override(s.settings, name, value, triagev1.Source_SOURCE_DEV, origin)
		}
	}
	fill("tls-cert", &o.TLSCert, files.ServerCert)
	fill("tls-key", &o.TLSKey, files.ServerKey)
	fill("client-ca", &o.ClientCA, files.CA)
	fill("policy-file", &o.PolicyFile, files.Policy)
	return nil
}

// validate checks the options before anything is opened.
func validate(o Options) error {
	if o.Addr == "" && o.UnixSocket == "" {
		return errors.New("nothing to listen on: set --addr host:port or --unix-socket PATH")
	}
	if o.Addr != "" {
		loop, err := isLoopback(o.Addr)
		if err != nil {
			return fmt.Errorf("--addr %q: %w (use host:port, e.g. %s)", o.Addr, err, DefaultAddr)
		}
		if o.Dev != "" && !loop {
			return fmt.Errorf("--dev serves development certificates on loopback only, and --addr %s is not loopback: use 127.0.0.1:PORT, or real certificates with --tls-cert/--tls-key/--client-ca", o.Addr)
		}
		if o.InsecureLocal && !loop {
			return fmt.Errorf("--insecure-local allows plaintext only on loopback or a Unix socket, and --addr %s is not loopback: listen on 127.0.0.1, or serve TLS with --tls-cert/--tls-key (or --dev DIR)", o.Addr)
		}
	}
	if o.TLSAddr != "" {
		if _, _, err := net.SplitHostPort(o.TLSAddr); err != nil {
			return fmt.Errorf("--tls-addr %q: %w (use host:port or :port, e.g. :7443)", o.TLSAddr, err)
		}
		if o.TLSCert == "" || o.TLSKey == "" {
			return errors.New("--tls-addr serves TLS: pass --tls-cert and --tls-key")
		}
		if o.ClientCA == "" && o.TokensFile == "" && o.KubeAuth == "" {
			return errors.New("no way for callers on --tls-addr to authenticate: pass --client-ca (mTLS), --tokens-file and/or --kube-auth")
		}
	}
	if o.InsecureLocal {
		if o.TLSAddr == "" && (o.TLSCert != "" || o.TLSKey != "" || o.ClientCA != "") {
			return errors.New("--insecure-local serves plaintext, but TLS files were given: drop --insecure-local to serve TLS, add --tls-addr to serve TLS on a second address, or drop --tls-cert/--tls-key/--client-ca")
		}
		if o.TokensFile == "" && o.KubeAuth == "" && o.UnixSocket == "" {
			return errors.New("--insecure-local on TCP needs --tokens-file or --kube-auth, or nobody could authenticate (on a --unix-socket callers are identified by uid)")
		}
	} else {
		if o.TLSCert == "" || o.TLSKey == "" {
			return errors.New("no TLS certificate: pass --tls-cert and --tls-key (with --client-ca for mTLS), or --dev DIR for local development, or --insecure-local for plaintext on loopback")
		}
		if o.ClientCA == "" && o.TokensFile == "" && o.KubeAuth == "" {
			return errors.New("no way for callers to authenticate: pass --client-ca (mTLS), --tokens-file (bearer tokens) and/or --kube-auth (Kubernetes ServiceAccount tokens)")
		}
	}
	if err := validateKube(o); err != nil {
		return err
	}
	switch {
	case o.MaxConcurrentStreams < 1:
		return errors.New("--max-concurrent-streams must be at least 1")
	case o.MaxInflight < 1:
		return errors.New("--max-inflight must be at least 1")
	case o.MaxConnections < 1:
		return errors.New("--max-connections must be at least 1")
	case o.MaxRecvMsgBytes < 1024:
		return errors.New("--max-recv-msg-bytes must be at least 1024")
	case o.MaxSendMsgBytes < 64<<10+1024:
		return errors.New("--max-send-msg-bytes must be at least 66560 (a 64 KiB artifact chunk and its framing)")
	case o.KeepaliveMinTime <= 0 || o.KeepaliveTime <= 0 || o.HandshakeTimeout <= 0:
		return errors.New("--keepalive-min-time, --keepalive-time and --handshake-timeout must be positive")
	case o.ReloadInterval < 0:
		return errors.New("--reload-interval must not be negative")
	case o.ReleaseMemoryIdle < 0:
		return errors.New("--release-memory-idle must not be negative (0 turns it off)")
	}
	return nil
}

// isLoopback reports whether a host:port listens only on loopback.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// loadAuth loads TLS, tokens and policy and returns the transport credentials.
func (s *Server) loadAuth() (credentials.TransportCredentials, error) {
	o := s.opts
	onErr := auth.WithOnError(func(err error) { s.log.Error("reload failed; keeping the previous version", "err", err) })
	interval := auth.WithReloadInterval(o.ReloadInterval)
	var err error
	if o.TokensFile != "" {
		if s.tokens, err = auth.NewTokensFile(o.TokensFile, interval, onErr); err != nil {
			return nil, err
		}
	}
	if o.PolicyFile != "" {
		if s.policy, err = auth.NewPolicyFile(o.PolicyFile, interval, onErr); err != nil {
			return nil, err
		}
		if s.policy.Policy().Empty() {
			s.log.Warn("the policy grants no roles: every call except health will be denied", "policy", o.PolicyFile)
		}
	} else if o.KubeAuth == "" {
		s.log.Warn("no --policy-file: every call except health will be denied")
	}
	if o.InsecureLocal && o.TLSAddr == "" {
		return localCreds{}, nil
	}
	requireCert := o.ClientCA != "" && o.TokensFile == "" && o.KubeAuth == ""
	if s.tls, err = auth.NewServerTLS(o.TLSCert, o.TLSKey, o.ClientCA, requireCert, interval, onErr); err != nil {
		return nil, err
	}
	tlsCreds := credentials.NewTLS(s.tls.Config())
	if o.InsecureLocal {
		// Plaintext on the loopback --addr (and the Unix socket), TLS on
		// --tls-addr: the listener decides, never the client.
		return listenerCreds{tls: tlsCreds}, nil
	}
	return tlsCreds, nil
}

// registerCapabilities registers each capability that can run here and
// records why the others are off.
func (s *Server) registerCapabilities(table []capability.Capability) error {
	if table == nil {
		table = DefaultCapabilities()
	}
	deps := capability.Deps{ProcRoot: s.opts.ProcRoot, CgroupRoot: s.opts.CgroupRoot, Logger: s.log, Server: s,
		Contribute: func(c capability.Contributor) { s.contribs = append(s.contribs, c) }}
	for _, c := range table {
		cleanup, err := c.Register(s.grpc, deps)
		if off, ok := capability.AsOff(err); ok {
			s.caps = append(s.caps, &triagev1.Capability{Name: c.Name, Reason: off.Reason, Fix: off.Fix})
			s.log.Info("capability off", "capability", c.Name, "reason", off.Reason, "fix", off.Fix)
			continue
		}
		if err != nil {
			return fmt.Errorf("capability %s: %w", c.Name, err)
		}
		if cleanup != nil {
			s.cleanups = append(s.cleanups, cleanup)
		}
		s.caps = append(s.caps, &triagev1.Capability{Name: c.Name, Enabled: true, Reason: "on"})
	}
	return nil
}

// listen opens the TCP and Unix listeners.
func (s *Server) listen() error {
	if s.opts.Addr != "" {
		l, err := net.Listen("tcp", s.opts.Addr)
		if err != nil {
			return fmt.Errorf("listen on --addr %s: %w (is another sidecar running? pick another port)", s.opts.Addr, err)
		}
		s.listeners = append(s.listeners, newLimitListener(l, s.opts.MaxConnections))
	}
	if p := s.opts.UnixSocket; p != "" {
		l, err := listenUnix(p)
		if err != nil {
			return err
		}
		s.listeners = append(s.listeners, newLimitListener(l, s.opts.MaxConnections))
	}
	if s.opts.TLSAddr != "" {
		l, err := net.Listen("tcp", s.opts.TLSAddr)
		if err != nil {
			return fmt.Errorf("listen on --tls-addr %s: %w (is another sidecar running? pick another port)", s.opts.TLSAddr, err)
		}
		s.listeners = append(s.listeners, tlsOnlyListener{newLimitListener(l, s.opts.MaxConnections)})
	}
	return nil
}

// listenUnix listens on path with mode 0660, replacing a stale socket but
// never a live one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("--unix-socket %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
			c.Close()
			return nil, fmt.Errorf("--unix-socket %s: another process is serving there; stop it or choose another path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--unix-socket %s: remove stale socket: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("--unix-socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("--unix-socket %s: chmod: %w", path, err)
	}
	return l, nil
}

// Addrs are the addresses the server listens on.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.Addr()
	}
	return out
}

// Serve serves until ctx is done, then stops gracefully (forcibly after 5s).
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		go func() { errc <- s.grpc.Serve(l) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.grpc.Stop()
		<-done
	}
	s.Close()
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}

// Close releases everything; Serve calls it.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.grpc != nil {
			s.grpc.Stop()
		}
		for _, l := range s.listeners {
			l.Close()
		}
		for _, c := range s.cleanups {
			c()
		}
		if s.audit != nil {
			s.audit.Close()
		}
		if s.guard != nil {
			s.guard.reclaim.close()
		}
	})
}

// The capability.ServerInfo implementation, for explain.

// Build implements capability.ServerInfo.
func (s *Server) Build() *triagev1.Build { return versionBuild() }

// Settings implements capability.ServerInfo. The settings do not change once
// the server is made, so they are converted once; the messages are shared.
func (s *Server) Settings() []*triagev1.Setting {
	v := &s.view
	v.settingsOnce.Do(func() {
		v.settings = make([]*triagev1.Setting, len(s.settings))
		for i, st := range s.settings {
			v.settings[i] = st.Proto()
		}
	})
	return v.settings
}

// Contributors implements capability.ServerInfo.
func (s *Server) Contributors() []capability.Contributor { return s.contribs }

// Capabilities implements capability.ServerInfo.
func (s *Server) Capabilities() []*triagev1.Capability { return s.caps }

// Certificates implements capability.ServerInfo. The description is
// rebuilt at most once per certViewTTL; the messages are shared.
func (s *Server) Certificates() []*triagev1.Certificate {
	if s.tls == nil {
		return nil
	}
	v := &s.view
	v.mu.Lock()
	defer v.mu.Unlock()
	if now := time.Now(); v.certs == nil || now.Sub(v.certsAt) >= certViewTTL {
		var out []*triagev1.Certificate
		for _, c := range s.tls.Certificates() {
			out = append(out, certProto(c))
		}
		v.certs, v.certsAt = out, now
	}
	return v.certs
}

// Auth implements capability.ServerInfo.
func (s *Server) Auth(ctx context.Context) *triagev1.Auth {
	a := &triagev1.Auth{}
	switch {
	case s.opts.InsecureLocal:
		if s.opts.UnixSocket != "" {
			a.Modes = append(a.Modes, "unix-peer")
		}
		if s.opts.TLSAddr != "" && s.opts.ClientCA != "" {
			a.Modes = append(a.Modes, "mtls")
		}
	case s.opts.ClientCA != "":
		a.Modes = append(a.Modes, "mtls")
	}
	if s.tokens != nil {
		a.Modes = append(a.Modes, "token")
	}
	if s.opts.KubeAuth != "" {
		a.Modes = append(a.Modes, "kube-"+s.opts.KubeAuth)
	}
	sort.Strings(a.Modes)
	if s.policy != nil {
		a.PolicyFile = s.policy.Path()
		a.Bindings = int32(s.policy.Policy().Bindings())
	}
	if id, ok := IdentityFrom(ctx); ok {
		a.Caller = &triagev1.Identity{Name: id.Name, Method: id.Method}
		if s.guard != nil {
			perms := map[triagev1.Permission]bool{}
			for _, r := range s.guard.roles(id) {
				a.Caller.Roles = append(a.Caller.Roles, string(r))
				for _, p := range r.Permissions() {
					perms[p] = true
				}
			}
			for p := range perms {
				a.Caller.Permissions = append(a.Caller.Permissions, p)
			}
			sort.Slice(a.Caller.Permissions, func(i, j int) bool { return a.Caller.Permissions[i] < a.Caller.Permissions[j] })
		}
	}
	return a
}
