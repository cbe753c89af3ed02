// Package inject is the pure logic of triage's Kubernetes injection: it
// decides whether a pod gets the triage sidecar (Decide), adds it
// (Mutate, returning the mutated pod and the RFC 6902 JSONPatch an
// AdmissionResponse carries), answers an AdmissionRequest (Review), and
// applies the same logic to manifests for `triage inject -f`
// (InjectManifests). It does no I/O: the webhook server and the CLI are thin
// wrappers that supply the namespace's labels.
//
// Guarantees:
//   - A pod that did not opt in is never changed.
//   - Injection is idempotent: an injected pod carries AnnotationStatus and is
//     left alone on reinvocation.
//   - The injector never makes a pod inadmissible under the namespace's Pod
//     Security enforce level: the mutated pod is checked with the Pod Security
//     Admission library itself, the capture profile is withheld where it
//     would be rejected, and injection is abandoned (the pod is left as it
//     was) if even the restricted sidecar would be.
//
// Capture: the Pod Security Standards forbid adding NET_RAW at baseline as
// well as restricted (baseline's allowed list is the runtime default set
// minus NET_RAW), so the capture profile is granted only where the
// namespace enforces privileged (or has no enforce label and the cluster
// default, Config.PodSecurityDefaults, is privileged). The capture profile
// also sets allowPrivilegeEscalation: true, because a non-root process gets
// NET_RAW only through file capabilities on exec, which no_new_privs blocks.
//
// Placement: the native sidecar is appended to initContainers, so regular
// init containers run (and finish) before it starts and none of them waits
// for it; the classic sidecar is appended to containers. Clusters before
// 1.29 drop restartPolicy on init containers, which would make a native
// sidecar block the pod: use classic there (per pod by annotation, or for
// the whole injector with Config.DefaultMode).
//
// Startup probe: the sidecar gets an exec startup probe (Config.ProbeCommand,
// by default `/triage-sidecar healthcheck`). A gRPC probe is not used because
// the kubelet dials gRPC probes in plaintext on the pod IP, while the sidecar
// listens on loopback with mTLS by default; opening a plaintext port on the
// pod IP only for the probe would contradict the security model.
package inject

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	psaapi "k8s.io/pod-security-admission/api"
)

// Labels and annotations that steer injection.
const (
	// LabelNamespaceInjection on a namespace opts its pods in when "enabled".
	LabelNamespaceInjection = "triage.dev/injection"
	// LabelPodInject on a pod ("true" or "false") overrides the namespace.
	LabelPodInject = "triage.dev/inject"

	// AnnotationStatus records what was injected (JSON, see Status); its
	// presence makes injection idempotent.
	AnnotationStatus = "triage.dev/status"
	// AnnotationSidecarMode is "native" (default) or "classic" (clusters < 1.29).
	AnnotationSidecarMode = "triage.dev/sidecar-mode"
	// AnnotationCapture "true" asks for the capture profile (NET_RAW).
	AnnotationCapture = "triage.dev/capture"
	// AnnotationShareProcessNamespace "true" sets spec.shareProcessNamespace.
	AnnotationShareProcessNamespace = "triage.dev/share-process-namespace"
	// AnnotationTLSSecret names a kubernetes.io/tls Secret in the pod's
	// namespace (e.g. cert-manager's): the sidecar then also serves TLS on
	// the pod IP (container port "triage-tls"), for `triage --direct`
	// from inside the cluster. Loopback stays plaintext for port-forwards.
	AnnotationTLSSecret = "triage.dev/tls-secret"
	// PortName and TLSPortName name the sidecar's container ports: the
	// loopback gRPC port the CLI port-forwards to, and the TLS port on the
	// pod IP (client/kube reads the same names).
	PortName    = "triage"
	TLSPortName = "triage-tls"
	// Resource overrides for the sidecar container (Kubernetes quantities).
	AnnotationCPURequest    = "triage.dev/sidecar-cpu"
	AnnotationMemoryRequest = "triage.dev/sidecar-memory"
	AnnotationCPULimit      = "triage.dev/sidecar-cpu-limit"
	AnnotationMemoryLimit   = "triage.dev/sidecar-memory-limit"

	// AnnotationDefaultContainer is kubectl's default container for logs/exec.
	AnnotationDefaultContainer = "kubectl.kubernetes.io/default-container"
	// AnnotationSafeToEvictLocalVolumes lists the local volumes the cluster
	// autoscaler may discard when it evicts the pod.
	AnnotationSafeToEvictLocalVolumes = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes"
)

// Sidecar modes.
const (
	ModeNative  = "native"
	ModeClassic = "classic"
)

// AgentSocketEnv is the app's environment variable naming the agent socket
// (sidecar/agent.SocketEnv; repeated here to keep this package free of the
// agent's dependencies).
const AgentSocketEnv = "TRIAGE_AGENT_SOCKET"

// SystemNamespaces are never injected.
var SystemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// Config is the injector's configuration. DefaultConfig fills every field.
type Config struct {
	// Version is recorded in the status annotation.
	Version string
	// Image is the sidecar image.
	Image string
	// ImagePullPolicy of the sidecar; empty leaves the cluster default.
	ImagePullPolicy corev1.PullPolicy
	// ContainerName is the sidecar container's name.
	ContainerName string
	// OwnNamespace is triage's own namespace, excluded like the system ones.
	OwnNamespace string
	// ExcludedNamespaces are excluded in addition to SystemNamespaces and OwnNamespace.
	ExcludedNamespaces []string
	// DefaultMode is ModeNative or ModeClassic.
	DefaultMode string
	// VolumeName is the agent socket's emptyDir volume.
	VolumeName string
	// SocketDir is where the volume is mounted in every container.
	SocketDir string
	// SocketFile is the socket's file name inside SocketDir.
	SocketFile string
	// VolumeSizeLimit bounds the memory-backed emptyDir.
	VolumeSizeLimit resource.Quantity
	// Args are passed to the sidecar before the injector's own flags.
	Args []string
	// KubeAuth is the sidecar's --kube-auth mode: "jwks" (ServiceAccount
	// tokens with triage's audience, verified against the cluster's keys),
	// "tokenreview", or "" to leave authentication to Args. With a mode the
	// sidecar serves plaintext on loopback (reached through the API
	// server's port-forward) and gets a projected token of its own, used
	// only to read the cluster's public keys or to post reviews.
	KubeAuth string
	// KubeAPIVolumeName is the projected volume holding the sidecar's token
	// for the API server and the cluster's CA.
	KubeAPIVolumeName string
	// KubeAPIDir is where that volume is mounted in the sidecar.
	KubeAPIDir string
	// KubeAPITokenSeconds is the projected token's lifetime (the kubelet
	// rotates it at 80%).
	KubeAPITokenSeconds int64
	// Port is the sidecar's gRPC port on loopback, declared as the
	// container port named "triage" (what the CLI port-forwards to).
	Port int32
	// TLSPort is the sidecar's TLS port on the pod IP when the pod names a
	// Secret (AnnotationTLSSecret), container port "triage-tls".
	TLSPort int32
	// TLSVolumeName and TLSDir are that Secret's volume and mount point.
	TLSVolumeName, TLSDir string
	// ProbeCommand is the exec startup probe's command.
	ProbeCommand []string
	// Resources are the sidecar's default requests and limits.
	Resources corev1.ResourceRequirements
	// DefaultUID and DefaultGID are used when the app sets no (non-root) UID.
	DefaultUID, DefaultGID int64
	// PodSecurityDefaults apply where a namespace has no pod-security labels
	// (the cluster's PodSecurity admission defaults; upstream: privileged).
	PodSecurityDefaults psaapi.Policy
}

// DefaultConfig returns the configuration used when nothing is overridden.
func DefaultConfig() Config {
	return Config{
		Version:             "dev",
		Image:               "ghcr.io/triage-sh/triage-sidecar:dev",
		ImagePullPolicy:     corev1.PullIfNotPresent,
		ContainerName:       "triage-sidecar",
		OwnNamespace:        "triage-system",
		DefaultMode:         ModeNative,
		VolumeName:          "triage-agent",
		SocketDir:           "/var/run/triage",
		SocketFile:          "agent.sock",
		VolumeSizeLimit:     resource.MustParse("1Mi"),
		KubeAuth:            "jwks",
		KubeAPIVolumeName:   "triage-kube-api",
		KubeAPIDir:          "/var/run/secrets/triage.dev/kube-api",
		KubeAPITokenSeconds: 3600,
		Port:                7070,
		TLSPort:             7443,
		TLSVolumeName:       "triage-tls",
		TLSDir:              "/var/run/secrets/triage.dev/tls",
		ProbeCommand:        []string{"/triage-sidecar", "healthcheck"},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("200m"),
				corev1.ResourceMemory: resource.MustParse("128Mi"),
			},
		},
		DefaultUID: 65532,
		DefaultGID: 65532,
		PodSecurityDefaults: psaapi.Policy{
			Enforce: psaapi.LevelVersion{Level: psaapi.LevelPrivileged, Version: psaapi.LatestVersion()},
			Audit:   psaapi.LevelVersion{Level: psaapi.LevelPrivileged, Version: psaapi.LatestVersion()},
			Warn:    psaapi.LevelVersion{Level: psaapi.LevelPrivileged, Version: psaapi.LatestVersion()},
		},
	}
}

// Validate reports a configuration the injector cannot work with.
func (c *Config) Validate() error {
	switch {
	case c.Image == "":
		return fmt.Errorf("inject: Config.Image is empty")
	case c.ContainerName == "":
		return fmt.Errorf("inject: Config.ContainerName is empty")
	case c.VolumeName == "":
		return fmt.Errorf("inject: Config.VolumeName is empty")
	case c.KubeAuth != "" && c.KubeAuth != "jwks" && c.KubeAuth != "tokenreview":
		return fmt.Errorf("inject: Config.KubeAuth %q: use jwks, tokenreview or empty", c.KubeAuth)
	case c.KubeAuth != "" && (c.KubeAPIVolumeName == "" || c.KubeAPIVolumeName == c.VolumeName || c.KubeAPIDir == "" || c.KubeAPIDir[0] != '/'):
		return fmt.Errorf("inject: Config.KubeAPIVolumeName %q / KubeAPIDir %q: need a distinct volume name and an absolute path", c.KubeAPIVolumeName, c.KubeAPIDir)
	case c.KubeAuth != "" && c.KubeAPITokenSeconds < 600:
		return fmt.Errorf("inject: Config.KubeAPITokenSeconds %d: the API server's minimum is 600", c.KubeAPITokenSeconds)
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("inject: Config.Port %d is not a port", c.Port)
	case c.TLSPort <= 0 || c.TLSPort > 65535 || c.TLSPort == c.Port:
		return fmt.Errorf("inject: Config.TLSPort %d is not a port distinct from Port", c.TLSPort)
	case c.TLSVolumeName == "" || c.TLSDir == "" || c.TLSDir[0] != '/':
		return fmt.Errorf("inject: Config.TLSVolumeName %q / TLSDir %q: need a volume name and an absolute path", c.TLSVolumeName, c.TLSDir)
	case c.SocketDir == "" || c.SocketDir[0] != '/':
		return fmt.Errorf("inject: Config.SocketDir %q is not an absolute path", c.SocketDir)
	case c.SocketFile == "":
		return fmt.Errorf("inject: Config.SocketFile is empty")
	case c.DefaultMode != ModeNative && c.DefaultMode != ModeClassic:
		return fmt.Errorf("inject: Config.DefaultMode %q is neither %q nor %q", c.DefaultMode, ModeNative, ModeClassic)
	case c.DefaultUID <= 0 || c.DefaultGID < 0:
		return fmt.Errorf("inject: Config.DefaultUID must be > 0 (the sidecar never runs as root) and DefaultGID >= 0")
	case len(c.ProbeCommand) == 0:
		return fmt.Errorf("inject: Config.ProbeCommand is empty")
	}
	return nil
}

// SocketPath is the agent socket's path in every container.
func (c *Config) SocketPath() string { return c.SocketDir + "/" + c.SocketFile }

// Namespace is what the injector needs to know about the pod's namespace.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// Reasons given by Decide.
const (
	ReasonNamespaceOptIn  = "namespace label " + LabelNamespaceInjection + "=enabled"
	ReasonPodOptIn        = "pod label " + LabelPodInject + "=true"
	ReasonPodOptOut       = "pod label " + LabelPodInject + "=false"
	ReasonNotOptedIn      = "neither the namespace (" + LabelNamespaceInjection + "=enabled) nor the pod (" + LabelPodInject + "=true) opted in"
	ReasonAlreadyInjected = "already injected (" + AnnotationStatus + " is set)"
	ReasonHostNetwork     = "hostNetwork pods are skipped"
	ReasonWindows         = "Windows pods are skipped"
	ReasonNoContainers    = "the pod has no containers"
)

// Decision says whether a pod gets the sidecar, and why.
type Decision struct {
	Inject bool
	Reason string
}

// Decide says whether pod, in namespace ns, gets the sidecar. The pod's label
// wins over the namespace's; excluded namespaces, hostNetwork and Windows
// pods, already-injected pods, and pods whose names collide with the
// sidecar's are never injected.
func Decide(pod *corev1.Pod, ns Namespace, cfg Config) Decision {
	if pod == nil {
		return Decision{Reason: "no pod"}
	}
	if _, ok := pod.Annotations[AnnotationStatus]; ok {
		return Decision{Reason: ReasonAlreadyInjected}
	}
	nsName := ns.Name
	if nsName == "" {
		nsName = pod.Namespace
	}
	if slices.Contains(SystemNamespaces, nsName) || (cfg.OwnNamespace != "" && nsName == cfg.OwnNamespace) || slices.Contains(cfg.ExcludedNamespaces, nsName) {
		return Decision{Reason: fmt.Sprintf("namespace %q is excluded", nsName)}
	}
	var reason string
	switch v, ok := pod.Labels[LabelPodInject]; {
	case ok && v == "false":
		return Decision{Reason: ReasonPodOptOut}
	case ok && v == "true":
		reason = ReasonPodOptIn
	case ns.Labels[LabelNamespaceInjection] == "enabled":
		reason = ReasonNamespaceOptIn
	case ok:
		return Decision{Reason: fmt.Sprintf("pod label %s=%q is neither true nor false, and the namespace did not opt in", LabelPodInject, v)}
	default:
		return Decision{Reason: ReasonNotOptedIn}
	}
	if pod.Spec.HostNetwork {
		return Decision{Reason: ReasonHostNetwork}
	}
	if pod.Spec.OS != nil && pod.Spec.OS.Name == corev1.Windows {
		return Decision{Reason: ReasonWindows}
	}
	if len(pod.Spec.Containers) == 0 {
		return Decision{Reason: ReasonNoContainers}
	}
	for _, c := range allContainers(&pod.Spec) {
		if c.Name == cfg.ContainerName {
			return Decision{Reason: fmt.Sprintf("a container named %q already exists", cfg.ContainerName)}
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == cfg.VolumeName || cfg.KubeAuth != "" && v.Name == cfg.KubeAPIVolumeName || v.Name == cfg.TLSVolumeName && pod.Annotations[AnnotationTLSSecret] != "" {
			return Decision{Reason: fmt.Sprintf("a volume named %q already exists", v.Name)}
		}
	}
	return Decision{Inject: true, Reason: reason}
}

func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		out = append(out, (*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
	return out
}
