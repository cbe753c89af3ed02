package inject

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	psaapi "k8s.io/pod-security-admission/api"
)

// Status is the JSON recorded in AnnotationStatus on an injected pod.
type Status struct {
	Version   string `json:"version"`
	Mode      string `json:"mode"`
	Container string `json:"container"`
	Volume    string `json:"volume"`
	// Capture is true when the capture profile (NET_RAW) was granted.
	Capture bool `json:"capture"`
	// CaptureWithheld says why a requested capture profile was not granted.
	CaptureWithheld       string `json:"captureWithheld,omitempty"`
	ShareProcessNamespace bool   `json:"shareProcessNamespace"`
	// TLSSecret is the Secret the sidecar serves TLS on the pod IP with.
	TLSSecret string `json:"tlsSecret,omitempty"`
	RunAsUser int64  `json:"runAsUser"`
	// UIDSource is "pod", "container" (the first app container) or "default".
	UIDSource string `json:"uidSource"`
	// PodSecurity is the namespace's enforce level:version the pod was checked against.
	PodSecurity string `json:"podSecurity"`
	// Reason is why the pod was injected (Decision.Reason).
	Reason string `json:"reason"`
}

// Result is what Mutate returns.
type Result struct {
	// Decision is Decide's answer for the input pod.
	Decision Decision
	// Injected is false when the pod was left unchanged.
	Injected bool
	// Pod is the mutated pod (a copy of the input when not injected).
	Pod *corev1.Pod
	// Patch is the RFC 6902 JSONPatch from the input pod to Pod, nil when
	// there is no change.
	Patch []byte
	// Warnings are for the AdmissionResponse (and the CLI's stderr).
	Warnings []string
	// Status is what AnnotationStatus records (zero when not injected).
	Status Status
}

// options are the per-pod choices read from annotations.
type options struct {
	mode         string
	capture      bool
	shareProcess bool
	tlsSecret    string
	resources    corev1.ResourceRequirements
}

// Mutate decides (Decide) and, when the pod opts in, injects the sidecar into a
// copy of pod. It never fails because of the pod: annotation values it cannot
// use become warnings. It fails only on an invalid cfg or a pod that cannot be
// encoded. Mutating an injected pod again changes nothing.
func Mutate(pod *corev1.Pod, ns Namespace, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pod == nil {
		return nil, fmt.Errorf("inject: nil pod")
	}
	res := &Result{Decision: Decide(pod, ns, cfg)}
	if !res.Decision.Inject {
		res.Pod = pod.DeepCopy()
		return res, nil
	}
	nsName := ns.Name
	if nsName == "" {
		nsName = pod.Namespace
	}
	policy, errs := psaapi.PolicyToEvaluate(ns.Labels, cfg.PodSecurityDefaults)
	if len(errs) > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("triage: namespace %q has invalid pod-security labels (%v); checking against %s as PodSecurity admission does", nsName, errs.ToAggregate(), policy.Enforce.String()))
	}
	opts, warnings := parseOptions(pod.Annotations, cfg)
	res.Warnings = append(res.Warnings, warnings...)

	inputAdmissible := admissible(pod, policy.Enforce) == ""
	capture, withheld := opts.capture, ""
	if capture && policy.Enforce.Level != psaapi.LevelPrivileged {
		// The Pod Security Standards forbid adding NET_RAW at baseline as
		// well as at restricted: only privileged allows it.
		capture = false
		withheld = fmt.Sprintf("namespace %q enforces Pod Security level %q, which forbids adding NET_RAW (only %q allows it)", nsName, policy.Enforce.Level, psaapi.LevelPrivileged)
	}
	out, st, buildWarns := build(pod, opts, capture, cfg)
	if inputAdmissible {
		why := admissible(out, policy.Enforce)
		if why != "" && capture {
			capture = false
			withheld = fmt.Sprintf("the capture profile would make the pod inadmissible under namespace %q's Pod Security level %s: %s", nsName, policy.Enforce.String(), why)
			out, st, buildWarns = build(pod, opts, capture, cfg)
			why = admissible(out, policy.Enforce)
		}
		if why != "" {
			res.Warnings = append(res.Warnings, fmt.Sprintf("triage: sidecar not injected: it would make the pod inadmissible under namespace %q's Pod Security level %s: %s", nsName, policy.Enforce.String(), why))
			res.Decision = Decision{Reason: "injection would make the pod inadmissible: " + why}
			res.Pod = pod.DeepCopy()
			return res, nil
		}
	}
	res.Warnings = append(res.Warnings, buildWarns...)
	if withheld != "" {
		res.Warnings = append(res.Warnings, "triage: capture profile withheld: "+withheld+"; the sidecar is injected without packet capture")
	}
	st.Version = cfg.Version
	st.CaptureWithheld = withheld
	st.PodSecurity = policy.Enforce.String()
	st.Reason = res.Decision.Reason
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	out.Annotations[AnnotationStatus] = string(b)

	patch, err := mutationPatch(pod, out)
	if err != nil {
		return nil, err
	}
	res.Injected, res.Pod, res.Patch, res.Status = true, out, patch, st
	return res, nil
}

var oneMilliCPU = resource.MustParse("1m")

// parseOptions reads the per-pod annotations; values it cannot use become
// warnings and the defaults stay.
func parseOptions(ann map[string]string, cfg Config) (options, []string) {
	var warns []string
	bad := func(key, val, why string) {
		warns = append(warns, fmt.Sprintf("triage: annotation %s=%q ignored: %s", key, val, why))
	}
	opts := options{mode: cfg.DefaultMode, resources: *cfg.Resources.DeepCopy()}
	if v, ok := ann[AnnotationSidecarMode]; ok {
		switch v {
		case ModeNative, ModeClassic:
			opts.mode = v
		default:
			bad(AnnotationSidecarMode, v, fmt.Sprintf("want %q or %q; using %q", ModeNative, ModeClassic, opts.mode))
		}
	}
	boolean := func(key string) bool {
		v, ok := ann[key]
		switch {
		case !ok || v == "false":
			return false
		case v == "true":
			return true
		}
		bad(key, v, `want "true" or "false"; using "false"`)
		return false
	}
	if v, ok := ann[AnnotationTLSSecret]; ok {
		if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
			bad(AnnotationTLSSecret, v, "not a Secret name ("+strings.Join(errs, "; ")+"); the sidecar serves no TLS port")
		} else {
			opts.tlsSecret = v
		}
	}
	opts.capture = boolean(AnnotationCapture)
	opts.shareProcess = boolean(AnnotationShareProcessNamespace)

	for _, o := range []struct {
		key  string
		list *corev1.ResourceList
		name corev1.ResourceName
	}{
		{AnnotationCPURequest, &opts.resources.Requests, corev1.ResourceCPU},
		{AnnotationMemoryRequest, &opts.resources.Requests, corev1.ResourceMemory},
		{AnnotationCPULimit, &opts.resources.Limits, corev1.ResourceCPU},
		{AnnotationMemoryLimit, &opts.resources.Limits, corev1.ResourceMemory},
	} {
		v, ok := ann[o.key]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		switch {
		case err != nil:
			bad(o.key, v, "not a Kubernetes quantity (e.g. 50m, 64Mi)")
			continue
		case q.Sign() <= 0:
			bad(o.key, v, "must be greater than zero")
			continue
		case o.name == corev1.ResourceCPU && q.Cmp(oneMilliCPU) < 0:
			bad(o.key, v, "CPU below 1m cannot be expressed")
			continue
		}
		if *o.list == nil {
			*o.list = corev1.ResourceList{}
		}
		(*o.list)[o.name] = q
	}
	// A request above its limit makes the pod invalid: clamp the request.
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okR := opts.resources.Requests[name]
		lim, okL := opts.resources.Limits[name]
		if okR && okL && req.Cmp(lim) > 0 {
			warns = append(warns, fmt.Sprintf("triage: sidecar %s request %s exceeds its limit %s; using %s for both", name, req.String(), lim.String(), lim.String()))
			opts.resources.Requests[name] = lim.DeepCopy()
		}
	}
	return opts, warns
}

// build returns a mutated copy of pod and the status it records (without
// version, reason and pod security, which Mutate fills).
func build(pod *corev1.Pod, opts options, capture bool, cfg Config) (*corev1.Pod, Status, []string) {
	out := pod.DeepCopy()
	spec := &out.Spec
	st := Status{Mode: opts.mode, Container: cfg.ContainerName, Volume: cfg.VolumeName, Capture: capture}

	// The agent socket's volume.
	limit := cfg.VolumeSizeLimit.DeepCopy()
	spec.Volumes = append(spec.Volumes, corev1.Volume{
		Name: cfg.VolumeName,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium:    corev1.StorageMediumMemory,
			SizeLimit: &limit,
		}},
	})
	if cfg.KubeAuth != "" {
		spec.Volumes = append(spec.Volumes, kubeAPIVolume(cfg))
	}
	if opts.tlsSecret != "" {
		st.TLSSecret = opts.tlsSecret
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: cfg.TLSVolumeName,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: opts.tlsSecret}}})
	}
	mount := corev1.VolumeMount{Name: cfg.VolumeName, MountPath: cfg.SocketDir}
	var warns []string
	for i := range spec.Containers {
		c := &spec.Containers[i]
		// A second mount at the same path would make the pod invalid.
		if j := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == cfg.SocketDir }); j >= 0 {
			warns = append(warns, fmt.Sprintf("triage: container %q already mounts volume %q at %s; the agent socket volume is not mounted there, so its agent cannot reach the sidecar", c.Name, c.VolumeMounts[j].Name, cfg.SocketDir))
		} else {
			c.VolumeMounts = append(c.VolumeMounts, mount)
		}
		if j := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == AgentSocketEnv }); j >= 0 {
			if e := c.Env[j]; e.ValueFrom != nil || e.Value != cfg.SocketPath() {
				warns = append(warns, fmt.Sprintf("triage: container %q sets %s itself; kept, but the sidecar expects the agent at %s", c.Name, AgentSocketEnv, cfg.SocketPath()))
			}
		} else {
			c.Env = append(c.Env, corev1.EnvVar{Name: AgentSocketEnv, Value: cfg.SocketPath()})
		}
	}

	uid, gid, src := appIdentity(pod, cfg)
	st.RunAsUser, st.UIDSource = uid, src
	sidecar := sidecarContainer(cfg, opts, capture, uid, gid)
	if opts.mode == ModeNative {
		always := corev1.ContainerRestartPolicyAlways
		sidecar.RestartPolicy = &always
		spec.InitContainers = append(spec.InitContainers, sidecar)
	} else {
		spec.Containers = append(spec.Containers, sidecar)
	}

	if opts.shareProcess {
		t := true
		spec.ShareProcessNamespace = &t
	}
	st.ShareProcessNamespace = spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace

	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	if _, ok := out.Annotations[AnnotationDefaultContainer]; !ok {
		out.Annotations[AnnotationDefaultContainer] = pod.Spec.Containers[0].Name
	}
	out.Annotations[AnnotationSafeToEvictLocalVolumes] = appendListItem(out.Annotations[AnnotationSafeToEvictLocalVolumes], cfg.VolumeName)
	return out, st, warns
}

// appendListItem appends item to a comma-separated list unless present.
func appendListItem(list, item string) string {
	var items []string
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			items = append(items, s)
		}
	}
	if !slices.Contains(items, item) {
		items = append(items, item)
	}
	return strings.Join(items, ",")
}

// appIdentity is the UID and GID the sidecar runs as: the first app
// container's, else the pod's, when non-root; else the configured default.
func appIdentity(pod *corev1.Pod, cfg Config) (uid, gid int64, source string) {
	var cuid, cgid, puid, pgid *int64
	if sc := pod.Spec.Containers[0].SecurityContext; sc != nil {
		cuid, cgid = sc.RunAsUser, sc.RunAsGroup
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		puid, pgid = sc.RunAsUser, sc.RunAsGroup
	}
	switch {
	case cuid != nil && *cuid > 0:
		uid, source = *cuid, "container"
	case cuid == nil && puid != nil && *puid > 0:
		uid, source = *puid, "pod"
	default:
		return cfg.DefaultUID, cfg.DefaultGID, "default"
	}
	switch {
	case cgid != nil:
		gid = *cgid
	case pgid != nil:
		gid = *pgid
	default:
		gid = -1 // the image's group for that user
	}
	return uid, gid, source
}

func sidecarContainer(cfg Config, opts options, capture bool, uid, gid int64) corev1.Container {
	f, t := false, true
	sc := &corev1.SecurityContext{
		RunAsNonRoot:             &t,
		RunAsUser:                &uid,
		ReadOnlyRootFilesystem:   &t,
		AllowPrivilegeEscalation: &f,
		Privileged:               &f,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if gid >= 0 {
		sc.RunAsGroup = &gid
	}
	if capture {
		// A non-root process gets an added capability only through file
		// capabilities on exec (kubernetes#56374), which no_new_privs
		// (allowPrivilegeEscalation: false) would block; baseline allows both.
		sc.Capabilities.Add = []corev1.Capability{"NET_RAW"}
		sc.AllowPrivilegeEscalation = &t
	}
	// The injector's flags, then cfg.Args (a flag given twice: the last
	// wins), then the agent socket.
	var args []string
	mounts := []corev1.VolumeMount{{Name: cfg.VolumeName, MountPath: cfg.SocketDir}}
	if cfg.KubeAuth != "" {
		args = append(args,
			fmt.Sprintf("--addr=127.0.0.1:%d", cfg.Port),
			"--insecure-local",
			"--kube-auth="+cfg.KubeAuth,
			"--kube-token-file="+path.Join(cfg.KubeAPIDir, "token"),
			"--kube-ca-file="+path.Join(cfg.KubeAPIDir, "ca.crt"))
		mounts = append(mounts, corev1.VolumeMount{Name: cfg.KubeAPIVolumeName, MountPath: cfg.KubeAPIDir, ReadOnly: true})
	}
	ports := []corev1.ContainerPort{{Name: PortName, ContainerPort: cfg.Port, Protocol: corev1.ProtocolTCP}}
	if opts.tlsSecret != "" {
		args = append(args,
			fmt.Sprintf("--tls-addr=:%d", cfg.TLSPort),
			"--tls-cert="+path.Join(cfg.TLSDir, "tls.crt"),
			"--tls-key="+path.Join(cfg.TLSDir, "tls.key"))
		mounts = append(mounts, corev1.VolumeMount{Name: cfg.TLSVolumeName, MountPath: cfg.TLSDir, ReadOnly: true})
		ports = append(ports, corev1.ContainerPort{Name: TLSPortName, ContainerPort: cfg.TLSPort, Protocol: corev1.ProtocolTCP})
	}
	args = append(append(args, cfg.Args...), "--agent-socket="+cfg.SocketPath())
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	return corev1.Container{
		Name:            cfg.ContainerName,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Args:            args,
		Ports:           ports,
		Env: []corev1.EnvVar{
			field("TRIAGE_POD_NAME", "metadata.name"),
			field("TRIAGE_POD_NAMESPACE", "metadata.namespace"),
			field("TRIAGE_POD_UID", "metadata.uid"),
		},
		VolumeMounts: mounts,
		Resources:    *opts.resources.DeepCopy(),
		StartupProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: slices.Clone(cfg.ProbeCommand)}},
			PeriodSeconds:    1,
			TimeoutSeconds:   2,
			FailureThreshold: 30,
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext:          sc,
	}
}

// kubeAPIVolume is the sidecar's own view of the API server: a token with
// the API server's audience (kubelet-rotated, independent of the app's
// automountServiceAccountToken) and the cluster's CA. With it the sidecar
// reads the cluster's public keys (/openid/v1/jwks, granted to every
// ServiceAccount by the default system:service-account-issuer-discovery
// binding), or posts TokenReviews in tokenreview mode.
func kubeAPIVolume(cfg Config) corev1.Volume {
	seconds := cfg.KubeAPITokenSeconds
	return corev1.Volume{
		Name: cfg.KubeAPIVolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &seconds}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
			},
		}},
	}
}
