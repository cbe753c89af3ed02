package injector

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	psaapi "k8s.io/pod-security-admission/api"

	"github.com/triage-sh/triage/internal/inject"
)

// Settings are the injector's command-line settings.
type Settings struct {
	Listen          string
	TLSCert, TLSKey string
	Kubeconfig      string
	NamespaceTTL    time.Duration
	MaxRequestBytes int64
	ReviewCacheSize int
	LogLevel        slog.Level
	ShutdownDelay   time.Duration
	ShutdownGrace   time.Duration
	Config          inject.Config
	Builtin         BuiltinSettings
}

// BuiltinSettings are the built-in certificate mode's flags.
type BuiltinSettings struct {
	Enabled       bool   // --builtin-certs
	Secret        string // --cert-secret
	WebhookConfig string // --webhook-config
	Service       string // --service
	// Namespace is --triage-namespace when given on the command line ("" when
	// not): the Secret's namespace, else the pod's (see OwnNamespace).
	Namespace string
}

// ErrHelp is returned by ParseFlags for -h/--help (usage was printed).
var ErrHelp = flag.ErrHelp

// ParseFlags parses args into Settings whose Config starts from
// inject.DefaultConfig (with Version set to version when not empty). Usage
// and errors go to out.
func ParseFlags(args []string, version string, out io.Writer) (*Settings, error) {
	s := &Settings{Config: inject.DefaultConfig()}
	if version != "" {
		s.Config.Version = version
	}
	c := &s.Config
	fs := flag.NewFlagSet("triage-injector", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "triage-injector: triage's mutating admission webhook (AdmissionReview v1 on %s over HTTPS).\n\nFlags:\n", PathMutate)
		fs.PrintDefaults()
	}
	fs.StringVar(&s.Listen, "listen", ":8443", "HTTPS listen address")
	fs.StringVar(&s.TLSCert, "tls-cert", "", "serving certificate file (PEM), reloaded when it changes (required)")
	fs.StringVar(&s.TLSKey, "tls-key", "", "serving key file (PEM), reloaded when it changes (required)")
	fs.StringVar(&s.Kubeconfig, "kubeconfig", "", "kubeconfig for reading namespaces' labels (default: in-cluster config)")
	fs.DurationVar(&s.NamespaceTTL, "namespace-cache-ttl", DefaultNamespaceTTL, "how long a namespace's labels are cached")
	fs.Int64Var(&s.MaxRequestBytes, "max-request-bytes", DefaultMaxRequestBytes, "largest AdmissionReview body accepted (413 above)")
	fs.IntVar(&s.ReviewCacheSize, "review-cache-size", DefaultReviewCacheSize, "answers to byte-identical pod CREATEs (a ReplicaSet's replicas) remembered; 0 disables")
	fs.TextVar(&s.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.DurationVar(&s.ShutdownDelay, "shutdown-delay", 2*time.Second, "on SIGTERM, how long to keep serving with /readyz failing, so that the Service stops sending reviews first")
	fs.DurationVar(&s.ShutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight reviews may finish on SIGTERM")

	fs.StringVar(&c.Image, "image", c.Image, "sidecar image")
	fs.Func("image-pull-policy", "sidecar imagePullPolicy: Always, IfNotPresent, Never, or empty for the cluster default (default "+string(c.ImagePullPolicy)+")", func(v string) error {
		switch p := corev1.PullPolicy(v); p {
		case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
			c.ImagePullPolicy = p
			return nil
		}
		return fmt.Errorf("%q is not Always, IfNotPresent or Never", v)
	})
	fs.StringVar(&c.ContainerName, "container-name", c.ContainerName, "sidecar container name")
	fs.StringVar(&c.OwnNamespace, "triage-namespace", c.OwnNamespace, "triage's own namespace (never injected)")
	fs.Func("exclude-namespaces", "comma-separated namespaces never injected, besides kube-system, kube-public, kube-node-lease and --triage-namespace", func(v string) error {
		c.ExcludedNamespaces = nil
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				c.ExcludedNamespaces = append(c.ExcludedNamespaces, n)
			}
		}
		return nil
	})
	fs.StringVar(&c.DefaultMode, "default-mode", c.DefaultMode, "sidecar mode when a pod does not say: native (init container, Kubernetes >= 1.29) or classic")
	fs.StringVar(&c.SocketDir, "socket-dir", c.SocketDir, "where the agent socket's emptyDir is mounted")
	fs.StringVar(&c.KubeAuth, "sidecar-kube-auth", c.KubeAuth, "how sidecars authenticate callers: jwks (ServiceAccount tokens with triage's audience, checked against the cluster's keys), tokenreview (TokenReview + SubjectAccessReview; the app's ServiceAccount needs system:auth-delegator), or empty (then pass --sidecar-arg flags for TLS and tokens)")
	fs.Func("sidecar-port", fmt.Sprintf("the sidecar's gRPC port on loopback, declared as container port \"triage\" (default %d)", c.Port), func(v string) error {
		p, err := strconv.ParseInt(v, 10, 32)
		if err != nil || p <= 0 || p > 65535 {
			return fmt.Errorf("%q is not a port number", v)
		}
		c.Port = int32(p)
		return nil
	})
	fs.Func("sidecar-arg", "an extra flag for every sidecar, e.g. --sidecar-arg=--capture-max-duration=30s (repeatable; given after the injector's own, so it overrides them)", func(v string) error {
		c.Args = append(c.Args, v)
		return nil
	})
	quantityVar(fs, &c.VolumeSizeLimit, "socket-volume-size", "size limit of the agent socket's memory-backed emptyDir")
	for _, r := range []struct {
		name, what string
		list       *corev1.ResourceList
		res        corev1.ResourceName
	}{
		{"cpu-request", "sidecar CPU request", &c.Resources.Requests, corev1.ResourceCPU},
		{"memory-request", "sidecar memory request", &c.Resources.Requests, corev1.ResourceMemory},
		{"cpu-limit", "sidecar CPU limit", &c.Resources.Limits, corev1.ResourceCPU},
		{"memory-limit", "sidecar memory limit", &c.Resources.Limits, corev1.ResourceMemory},
	} {
		resourceVar(fs, r.list, r.res, r.name, r.what+" (per pod: the triage.dev/sidecar-* annotations; 0 removes it)")
	}
	fs.Int64Var(&c.DefaultUID, "default-uid", c.DefaultUID, "sidecar UID when the app sets no non-root UID")
	fs.Int64Var(&c.DefaultGID, "default-gid", c.DefaultGID, "sidecar GID when the app sets no GID")
	fs.Func("pod-security-default", "the cluster's PodSecurity admission default level[:version] for namespaces without pod-security labels (default privileged:latest)", func(v string) error {
		lvl, ver, _ := strings.Cut(v, ":")
		level, err := psaapi.ParseLevel(lvl)
		if err != nil {
			return err
		}
		version := psaapi.LatestVersion()
		if ver != "" {
			if version, err = psaapi.ParseVersion(ver); err != nil {
				return err
			}
		}
		lv := psaapi.LevelVersion{Level: level, Version: version}
		c.PodSecurityDefaults = psaapi.Policy{Enforce: lv, Audit: lv, Warn: lv}
		return nil
	})
	b := &s.Builtin
	fs.BoolVar(&b.Enabled, "builtin-certs", false, "built-in certificates: keep a CA and the serving certificate in Secret --cert-secret (which must exist) and the caBundle of --webhook-config patched to the CA; --tls-cert and --tls-key are that Secret's volume")
	fs.StringVar(&b.Secret, "cert-secret", "triage-injector-tls", "with --builtin-certs: the Secret (in --triage-namespace when given, else the pod's namespace) holding ca.crt, ca.key, tls.crt and tls.key")
	fs.StringVar(&b.WebhookConfig, "webhook-config", "triage-injector", "with --builtin-certs: the MutatingWebhookConfiguration whose webhooks' caBundle is kept patched")
	fs.StringVar(&b.Service, "service", "triage-injector", "with --builtin-certs: the webhook's Service; the certificate is for SERVICE.NAMESPACE.svc and SERVICE.NAMESPACE.svc.cluster.local")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "triage-namespace" {
			b.Namespace = c.OwnNamespace
		}
	})
	if b.Enabled {
		for _, f := range []struct{ name, v string }{{"cert-secret", b.Secret}, {"webhook-config", b.WebhookConfig}, {"service", b.Service}} {
			if f.v == "" {
				return nil, fmt.Errorf("--builtin-certs needs --%s", f.name)
			}
		}
		if errs := validation.IsDNS1035Label(b.Service); len(errs) > 0 {
			return nil, fmt.Errorf("--service=%s: %s", b.Service, strings.Join(errs, "; "))
		}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if s.TLSCert == "" || s.TLSKey == "" {
		return nil, errors.New("--tls-cert and --tls-key are required")
	}
	if s.MaxRequestBytes <= 0 {
		return nil, errors.New("--max-request-bytes must be > 0")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func quantityVar(fs *flag.FlagSet, q *resource.Quantity, name, usage string) {
	fs.Func(name, fmt.Sprintf("%s (default %s)", usage, q.String()), func(v string) error {
		p, err := resource.ParseQuantity(v)
		if err != nil {
			return err
		}
		*q = p
		return nil
	})
}

func resourceVar(fs *flag.FlagSet, list *corev1.ResourceList, res corev1.ResourceName, name, usage string) {
	def := "none"
	if q, ok := (*list)[res]; ok {
		def = q.String()
	}
	fs.Func(name, fmt.Sprintf("%s (default %s)", usage, def), func(v string) error {
		p, err := resource.ParseQuantity(v)
		if err != nil {
			return err
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		if p.IsZero() {
			delete(*list, res)
			return nil
		}
		(*list)[res] = p
		return nil
	})
}

// KubeClient builds a clientset from kubeconfig, or the in-cluster config
// when kubeconfig is empty.
func KubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("injector: kubernetes client config: %w", err)
	}
	cfg.UserAgent = "triage-injector"
	cfg.QPS, cfg.Burst = 20, 40
	cfg.Timeout = defaultFetchTimeout
	return kubernetes.NewForConfig(cfg)
}

// NewHTTPServer returns the HTTPS server: TLS 1.2 or later with the
// certificate from certs, timeouts, and errors logged to log.
func NewHTTPServer(addr string, h http.Handler, certs *CertReloader, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:    addr,
		Handler: h,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: certs.GetCertificate,
		},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Run is the command: it parses args, serves until ctx is done, then drains.
// It returns the exit code.
func Run(ctx context.Context, args []string, version string, stderr io.Writer) int {
	s, err := ParseFlags(args, version, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "triage-injector: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: s.LogLevel}))
	klog.SetSlogLogger(log.With("component", "client-go")) // client-go's own logs as JSON too
	client, err := KubeClient(s.Kubeconfig)
	if err != nil {
		log.Error("startup", "error", err.Error())
		return 1
	}
	if s.Builtin.Enabled {
		bc := s.BuiltinCerts(client, os.Getenv, os.ReadFile, log)
		log.Info("built-in certificates", "secret", bc.Namespace+"/"+bc.SecretName, "webhookConfiguration", bc.WebhookConfig, "dnsNames", bc.DNSNames())
		bctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); bc.Run(bctx) }()
		defer func() { stop(); <-done }()
	}
	if err := Serve(ctx, s, NewNamespaceCache(client, s.NamespaceTTL), log, nil); err != nil {
		log.Error("exit", "error", err.Error())
		return 1
	}
	return 0
}

// BuiltinCerts returns the built-in mode's certificate keeper for s, in the
// namespace OwnNamespace resolves with getenv and readFile.
func (s *Settings) BuiltinCerts(client kubernetes.Interface, getenv func(string) string, readFile func(string) ([]byte, error), log *slog.Logger) *BuiltinCerts {
	return &BuiltinCerts{
		Client:        client,
		Namespace:     OwnNamespace(s.Builtin.Namespace, s.Config.OwnNamespace, getenv, readFile),
		SecretName:    s.Builtin.Secret,
		WebhookConfig: s.Builtin.WebhookConfig,
		Service:       s.Builtin.Service,
		Log:           log,
	}
}

// Serve serves s with namespaces' labels from ns until ctx is done. When
// ready is not nil, it receives the listener's address once serving.
//
// With --builtin-certs the certificate files may not exist yet: Serve then
// serves a placeholder certificate with /readyz failing until they load.
func Serve(ctx context.Context, s *Settings, ns NamespaceLabeler, log *slog.Logger, ready func(addr net.Addr)) error {
	var (
		certs   *CertReloader
		err     error
		readyFn func() bool
	)
	if s.Builtin.Enabled {
		names := (&BuiltinCerts{Service: s.Builtin.Service, Namespace: OwnNamespace(s.Builtin.Namespace, s.Config.OwnNamespace, os.Getenv, os.ReadFile)}).DNSNames()
		if certs, err = NewWaitingCertReloader(s.TLSCert, s.TLSKey, names, log); err == nil {
			readyFn = certs.Loaded
		}
	} else {
		certs, err = NewCertReloader(s.TLSCert, s.TLSKey, log)
	}
	if err != nil {
		return err
	}
	cacheSize := s.ReviewCacheSize
	if cacheSize == 0 {
		cacheSize = -1 // Options: negative disables
	}
	h, err := NewHandler(Options{Config: s.Config, Namespaces: ns, Logger: log, MaxRequestBytes: s.MaxRequestBytes, ReviewCacheSize: cacheSize, Ready: readyFn})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return err
	}
	srv := NewHTTPServer(s.Listen, h, certs, log)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	log.Info("serving", "addr", ln.Addr().String(), "version", s.Config.Version, "image", s.Config.Image, "triageNamespace", s.Config.OwnNamespace, "defaultMode", s.Config.DefaultMode, "podSecurityDefault", s.Config.PodSecurityDefaults.Enforce.String())
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	h.SetReady(false)
	log.Info("shutting down", "delay", s.ShutdownDelay.String(), "grace", s.ShutdownGrace.String())
	if s.ShutdownDelay > 0 {
		select {
		case <-time.After(s.ShutdownDelay):
		case err := <-errc:
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
