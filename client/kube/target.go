package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Kind is what a target names.
type Kind string

// The kinds of target.
const (
	KindPod         Kind = "pod"
	KindDeployment  Kind = "deployment"
	KindStatefulSet Kind = "statefulset"
	KindDaemonSet   Kind = "daemonset"
	KindSelector    Kind = "selector"
)

// kinds maps each accepted spelling (lower case) to its kind.
var kinds = map[string]Kind{
	"pod": KindPod, "pods": KindPod, "po": KindPod,
	"deployment": KindDeployment, "deployments": KindDeployment, "deploy": KindDeployment,
	"deployment.apps": KindDeployment, "deployments.apps": KindDeployment,
	"statefulset": KindStatefulSet, "statefulsets": KindStatefulSet, "sts": KindStatefulSet,
	"statefulset.apps": KindStatefulSet, "statefulsets.apps": KindStatefulSet,
	"daemonset": KindDaemonSet, "daemonsets": KindDaemonSet, "ds": KindDaemonSet,
	"daemonset.apps": KindDaemonSet, "daemonsets.apps": KindDaemonSet,
}

// TypedKind returns the kind a TYPE/NAME argument names (pod/web,
// deploy/web, sts/db, ...); ok is false when arg has no "/" or an unknown
// TYPE. A command uses it to tell a target from its other arguments.
func TypedKind(arg string) (kind Kind, ok bool) {
	typ, _, found := strings.Cut(arg, "/")
	if !found {
		return "", false
	}
	kind, ok = kinds[strings.ToLower(typ)]
	return kind, ok
}

// Target is what a command runs on: one pod, a workload's pods, or the
// pods a label selector matches.
type Target struct {
	Kind Kind
	// Name of the pod or workload; "" for KindSelector.
	Name string
	// Selector is the -l selector for KindSelector.
	Selector string
}

// String renders the target as the user would type it.
func (t Target) String() string {
	if t.Kind == KindSelector {
		return "-l " + t.Selector
	}
	return string(t.Kind) + "/" + t.Name
}

// ParseTarget parses a command's target: one argument TYPE/NAME (pod/,
// po/, pods/, deploy/, deployment(s)/, sts/, statefulset(s)/, ds/,
// daemonset(s)/) or a bare NAME for a pod, or no argument and a -l
// selector.
func ParseTarget(args []string, selector string) (Target, error) {
	selector = strings.TrimSpace(selector)
	switch {
	case len(args) == 0 && selector == "":
		return Target{}, errors.New("no target: give a pod (NAME or pod/NAME), a workload (deploy/NAME, sts/NAME, ds/NAME) or -l SELECTOR")
	case len(args) > 0 && selector != "":
		return Target{}, fmt.Errorf("both %q and -l %q were given: give either a target or a selector", strings.Join(args, " "), selector)
	case len(args) > 1:
		return Target{}, fmt.Errorf("%d targets given (%s): give one, or select several pods with -l", len(args), strings.Join(args, " "))
	case selector != "":
		if _, err := labels.Parse(selector); err != nil {
			return Target{}, fmt.Errorf("-l %q: %w", selector, err)
		}
		return Target{Kind: KindSelector, Selector: selector}, nil
	}
	arg := args[0]
	kind, name := KindPod, arg
	if typ, n, ok := strings.Cut(arg, "/"); ok {
		k, known := kinds[strings.ToLower(typ)]
		if !known {
			return Target{}, fmt.Errorf("target %q: unknown type %q: use pod/, deploy/, sts/ or ds/", arg, typ)
		}
		kind, name = k, n
	}
	if name == "" {
		return Target{}, fmt.Errorf("target %q has no name: write %s/NAME", arg, kind)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return Target{}, fmt.Errorf("target %q: %q is not a valid %s name: %s", arg, name, kind, strings.Join(errs, "; "))
	}
	return Target{Kind: kind, Name: name}, nil
}

// Pod is a pod of a target and how to reach its sidecar.
type Pod struct {
	Namespace, Name string
	UID             string
	IP              string
	Node            string
	// Ready is the pod's Ready condition.
	Ready bool
	// SidecarPort is the sidecar container's port named "triage", else
	// --sidecar-port.
	SidecarPort int
	// TLSPort is the sidecar container's port named "triage-tls" (TLS on
	// the pod IP, for --direct), 0 when it declares none.
	TLSPort int
	// Restarts is the sum of the app containers' restart counts (the
	// sidecar's own not included).
	Restarts int32
	// Skip, when not empty, says why the pod cannot be reached; such pods
	// are listed, not contacted.
	Skip string
}

// String is namespace/name.
func (p Pod) String() string { return p.Namespace + "/" + p.Name }

// NotInjected is the Skip reason of a pod without the sidecar.
const NotInjected = "not injected (no %s container): label the namespace triage.dev/injection=enabled and restart it"

// Resolve lists the pods of t in k.Namespace, sorted by name. A workload's
// pods are those its spec.selector matches. Pods that are not running or
// have no running sidecar are returned with a Skip reason.
func (k *Kube) Resolve(ctx context.Context, t Target) ([]Pod, error) {
	ns := k.Namespace
	if t.Kind == KindPod {
		p, err := k.Clientset.CoreV1().Pods(ns).Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return nil, k.apiError(err, "get", "pods", t, ns)
		}
		return []Pod{k.pod(p)}, nil
	}
	sel, err := k.selector(ctx, t, ns)
	if err != nil {
		return nil, err
	}
	list, err := k.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, k.apiError(err, "list", "pods", t, ns)
	}
	if len(list.Items) == 0 {
		if t.Kind == KindSelector {
			return nil, fmt.Errorf("no pods match %s %s", t, k.where(ns))
		}
		return nil, fmt.Errorf("%s has no pods (selector %s) %s", t, sel, k.where(ns))
	}
	pods := make([]Pod, 0, len(list.Items))
	for i := range list.Items {
		pods = append(pods, k.pod(&list.Items[i]))
	}
	slices.SortFunc(pods, func(a, b Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods, nil
}

// selector returns the label selector of t: -l, or the workload's
// spec.selector.
func (k *Kube) selector(ctx context.Context, t Target, ns string) (string, error) {
	var ls *metav1.LabelSelector
	var resource string
	var err error
	apps := k.Clientset.AppsV1()
	switch t.Kind {
	case KindSelector:
		return t.Selector, nil
	case KindDeployment:
		resource = "deployments"
		d, e := apps.Deployments(ns).Get(ctx, t.Name, metav1.GetOptions{})
		if err = e; e == nil {
			ls = d.Spec.Selector
		}
	case KindStatefulSet:
		resource = "statefulsets"
		s, e := apps.StatefulSets(ns).Get(ctx, t.Name, metav1.GetOptions{})
		if err = e; e == nil {
			ls = s.Spec.Selector
		}
	case KindDaemonSet:
		resource = "daemonsets"
		d, e := apps.DaemonSets(ns).Get(ctx, t.Name, metav1.GetOptions{})
		if err = e; e == nil {
			ls = d.Spec.Selector
		}
	default:
		return "", fmt.Errorf("target %s: unknown kind %q", t, t.Kind)
	}
	if err != nil {
		return "", k.apiError(err, "get", resource+".apps", t, ns)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return "", fmt.Errorf("%s %s: its spec.selector: %w", t, k.where(ns), err)
	}
	if ls == nil || sel.Empty() {
		return "", fmt.Errorf("%s %s has an empty spec.selector: it would match every pod; use -l instead", t, k.where(ns))
	}
	return sel.String(), nil
}

// apiError explains an API error: what was not found and where, or which
// RBAC permission is missing.
func (k *Kube) apiError(err error, verb, resource string, t Target, ns string) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s not found %s: check the name, -n and --context: %w", t, k.where(ns), err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("you may not %s %s %s: ask for RBAC %q on %q there: %w", verb, resource, k.where(ns), verb, resource, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server rejected your credentials (context %q): log in again: %w", k.ContextName, err)
	}
	return fmt.Errorf("%s %s %s: %w", verb, resource, k.where(ns), err)
}

// pod converts p, deciding whether it can be reached.
func (k *Kube) pod(p *corev1.Pod) Pod {
	out := Pod{
		Namespace:   p.Namespace,
		Name:        p.Name,
		UID:         string(p.UID),
		IP:          p.Status.PodIP,
		Node:        p.Spec.NodeName,
		SidecarPort: k.Flags.Port,
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != k.Flags.Container {
			out.Restarts += cs.RestartCount
		}
	}
	c := sidecarContainer(p, k.Flags.Container)
	if c != nil {
		for _, port := range c.Ports {
			switch port.Name {
			case SidecarPortName:
				out.SidecarPort = int(port.ContainerPort)
			case SidecarTLSPortName:
				out.TLSPort = int(port.ContainerPort)
			}
		}
	}
	out.Skip = skipReason(p, c, k.Flags.Container)
	return out
}

// sidecarContainer finds the sidecar in the pod's containers or, for a
// native sidecar, its init containers.
func sidecarContainer(p *corev1.Pod, name string) *corev1.Container {
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	return nil
}

// skipReason says why the pod cannot be reached, or "".
func skipReason(p *corev1.Pod, c *corev1.Container, name string) string {
	if p.DeletionTimestamp != nil {
		return "terminating"
	}
	if p.Status.Phase != corev1.PodRunning {
		phase := string(p.Status.Phase)
		if phase == "" {
			phase = "Unknown"
		}
		if p.Status.Reason != "" {
			return fmt.Sprintf("pod is %s (%s), not Running", phase, p.Status.Reason)
		}
		return fmt.Sprintf("pod is %s, not Running", phase)
	}
	if c == nil {
		return fmt.Sprintf(NotInjected, name)
	}
	for _, statuses := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for _, s := range statuses {
			if s.Name != name || s.State.Running != nil {
				continue
			}
			if w := s.State.Waiting; w != nil && w.Reason != "" {
				return fmt.Sprintf("the %s container is not running (%s)", name, w.Reason)
			}
			return fmt.Sprintf("the %s container is not running", name)
		}
	}
	return ""
}
