package kube

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Defaults for [Flags].
const (
	DefaultConcurrency      = 10
	DefaultTierNamespace    = "triage-system"
	DefaultAudience         = "triage.dev"
	DefaultSidecarPort      = 7070
	DefaultSidecarContainer = "triage-sidecar"
	// SidecarPortName is the name of the sidecar container's port that, when
	// present, overrides --sidecar-port.
	SidecarPortName = "triage"
	// SidecarTLSPortName names the sidecar's TLS port on the pod IP, which
	// --direct dials (the injector declares it for pods annotated
	// triage.dev/tls-secret).
	SidecarTLSPortName = "triage-tls"
)

// Port-forward transports for [Flags.Transport].
const (
	// TransportAuto tries SPDY over websocket first and falls back to
	// SPDY when the API server (or a proxy) cannot upgrade to websocket,
	// as kubectl does.
	TransportAuto = ""
	// TransportSPDY uses SPDY only.
	TransportSPDY = "spdy"
	// TransportEnv, when set to "spdy", forces SPDY if Flags.Transport is
	// empty (for tests and clusters behind websocket-hostile proxies).
	TransportEnv = "TRIAGE_PORTFORWARD"
)

// Flags are the CLI's Kubernetes flags. New and NewForConfig fill zero
// fields with the defaults, so a Flags built in code need not repeat them.
type Flags struct {
	// Kubeconfig is a kubeconfig path; "" means $KUBECONFIG, then
	// ~/.kube/config, then the in-cluster configuration.
	Kubeconfig string
	// Context is the kubeconfig context; "" means the current one.
	Context string
	// Namespace of the target; "" means the context's namespace.
	Namespace string
	// Direct dials the pod IP over TLS instead of port-forwarding.
	Direct bool
	// Concurrency bounds the pods being set up or downloaded at once.
	Concurrency int
	// PodTimeout bounds the work on each pod (0: none).
	PodTimeout time.Duration
	// Timeout bounds the whole fleet command (0: none).
	Timeout time.Duration
	// TierNamespace holds the tier ServiceAccounts (triage-viewer, ...).
	TierNamespace string
	// Audience of the minted tokens; the sidecar accepts only its own.
	Audience string
	// Port is the sidecar's port when its container names no "triage" port.
	Port int
	// Container is the sidecar container's name.
	Container string
	// Transport is TransportAuto or TransportSPDY; empty defers to the
	// TRIAGE_PORTFORWARD environment variable.
	Transport string
}

// AddFlags registers the flags on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Kubeconfig, "kubeconfig", f.Kubeconfig, "path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster configuration)")
	fs.StringVar(&f.Context, "context", f.Context, "kubeconfig context to use (default: the current context)")
	fs.StringVarP(&f.Namespace, "namespace", "n", f.Namespace, "namespace of the target (default: the context's namespace)")
	fs.BoolVar(&f.Direct, "direct", f.Direct, "connect to the pod IP over TLS instead of through the API server's port-forward")
	fs.IntVar(&f.Concurrency, "concurrency", orInt(f.Concurrency, DefaultConcurrency), "pods connected to or downloaded from at once (idle sampling does not count)")
	fs.DurationVar(&f.PodTimeout, "pod-timeout", f.PodTimeout, "time limit for each pod, from its connection (0: none)")
	fs.DurationVar(&f.Timeout, "fleet-timeout", f.Timeout, "time limit for the whole command across all pods (0: none)")
	fs.StringVar(&f.TierNamespace, "tier-namespace", orString(f.TierNamespace, DefaultTierNamespace), "namespace of the triage tier ServiceAccounts whose tokens are minted")
	fs.StringVar(&f.Audience, "audience", orString(f.Audience, DefaultAudience), "audience of the minted tokens (the sidecar's --kube-audience)")
	fs.IntVar(&f.Port, "sidecar-port", orInt(f.Port, DefaultSidecarPort), `sidecar port, unless its container declares a port named "triage"`)
	fs.StringVar(&f.Container, "sidecar-container", orString(f.Container, DefaultSidecarContainer), "name of the sidecar container")
}

// withDefaults fills the zero fields with their defaults.
func (f Flags) withDefaults() Flags {
	f.Concurrency = orInt(f.Concurrency, DefaultConcurrency)
	f.TierNamespace = orString(f.TierNamespace, DefaultTierNamespace)
	f.Audience = orString(f.Audience, DefaultAudience)
	f.Port = orInt(f.Port, DefaultSidecarPort)
	f.Container = orString(f.Container, DefaultSidecarContainer)
	if f.Transport == TransportAuto {
		f.Transport = strings.ToLower(strings.TrimSpace(os.Getenv(TransportEnv)))
	}
	return f
}

// validate checks the values a user may get wrong.
func (f Flags) validate() error {
	switch {
	case f.Concurrency < 1:
		return fmt.Errorf("--concurrency %d: give at least 1", f.Concurrency)
	case f.Port < 1 || f.Port > 65535:
		return fmt.Errorf("--sidecar-port %d: give a port between 1 and 65535", f.Port)
	case f.PodTimeout < 0 || f.Timeout < 0:
		return fmt.Errorf("--pod-timeout and --fleet-timeout must not be negative")
	case f.Transport != TransportAuto && f.Transport != TransportSPDY:
		return fmt.Errorf("port-forward transport %q (from %s): use %q, or leave it unset for websocket with SPDY fallback", f.Transport, TransportEnv, TransportSPDY)
	}
	return nil
}

// load reads the kubeconfig as kubectl does and returns the REST
// configuration, the namespace (the flag, else the context's, else
// "default") and the context's name for messages.
func (f Flags) load() (cfg *rest.Config, namespace, context string, err error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.Context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err = cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, "", "", fmt.Errorf("no Kubernetes configuration: set KUBECONFIG or --kubeconfig, or run inside a cluster (%w)", err)
		}
		return nil, "", "", fmt.Errorf("load kubeconfig: %w", err)
	}
	namespace = f.Namespace
	if namespace == "" {
		if namespace, _, err = cc.Namespace(); err != nil {
			return nil, "", "", fmt.Errorf("namespace of the kubeconfig context: %w (give -n)", err)
		}
	}
	context = f.Context
	if context == "" {
		if raw, err := cc.RawConfig(); err == nil {
			context = raw.CurrentContext
		}
	}
	return cfg, namespace, context, nil
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
