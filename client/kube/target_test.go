package kube

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/triage-sh/triage/client"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		args     []string
		selector string
		want     Target
		wantErr  string
	}{
		{args: []string{"web-0"}, want: Target{Kind: KindPod, Name: "web-0"}},
		{args: []string{"pod/web-0"}, want: Target{Kind: KindPod, Name: "web-0"}},
		{args: []string{"po/web-0"}, want: Target{Kind: KindPod, Name: "web-0"}},
		{args: []string{"pods/web-0"}, want: Target{Kind: KindPod, Name: "web-0"}},
		{args: []string{"deploy/web"}, want: Target{Kind: KindDeployment, Name: "web"}},
		{args: []string{"deployment/web"}, want: Target{Kind: KindDeployment, Name: "web"}},
		{args: []string{"Deployments/web"}, want: Target{Kind: KindDeployment, Name: "web"}},
		{args: []string{"deployments.apps/web"}, want: Target{Kind: KindDeployment, Name: "web"}},
		{args: []string{"sts/db"}, want: Target{Kind: KindStatefulSet, Name: "db"}},
		{args: []string{"statefulset/db"}, want: Target{Kind: KindStatefulSet, Name: "db"}},
		{args: []string{"statefulsets/db"}, want: Target{Kind: KindStatefulSet, Name: "db"}},
		{args: []string{"ds/agent"}, want: Target{Kind: KindDaemonSet, Name: "agent"}},
		{args: []string{"daemonsets/agent"}, want: Target{Kind: KindDaemonSet, Name: "agent"}},
		{selector: "app=web,tier!=db", want: Target{Kind: KindSelector, Selector: "app=web,tier!=db"}},
		{selector: " app=web ", want: Target{Kind: KindSelector, Selector: "app=web"}},
		{wantErr: "no target"},
		{args: []string{"web"}, selector: "app=web", wantErr: "either a target or a selector"},
		{args: []string{"a", "b"}, wantErr: "give one"},
		{args: []string{"svc/web"}, wantErr: `unknown type "svc"`},
		{args: []string{"deploy/"}, wantErr: "has no name"},
		{args: []string{"pod/Web_0"}, wantErr: "not a valid pod name"},
		{args: []string{"deploy/a/b"}, wantErr: "not a valid deployment name"},
		{selector: "app in (", wantErr: "-l"},
	}
	for _, tt := range tests {
		name := strings.Join(tt.args, " ") + " -l " + tt.selector
		t.Run(name, func(t *testing.T) {
			got, err := ParseTarget(tt.args, tt.selector)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTarget = %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseTarget = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestTypedKind: an argument is a TYPE/NAME target exactly when
// ParseTarget reads its TYPE, and of the same kind.
func TestTypedKind(t *testing.T) {
	for spelling, want := range kinds {
		for _, arg := range []string{spelling + "/x", strings.ToUpper(spelling) + "/x"} {
			if got, ok := TypedKind(arg); !ok || got != want {
				t.Errorf("TypedKind(%q) = %q, %v; want %q", arg, got, ok, want)
			}
			if tgt, err := ParseTarget([]string{arg}, ""); err != nil || tgt.Kind != want {
				t.Errorf("ParseTarget(%q) = %+v, %v; want kind %q", arg, tgt, err, want)
			}
		}
	}
	for _, arg := range []string{"web", "svc/web", "/web", "", "podx/web", "pod.apps/web"} {
		if got, ok := TypedKind(arg); ok {
			t.Errorf("TypedKind(%q) = %q, true; want not a TYPE/NAME target", arg, got)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"web", "pod/web", "deploy/web", "sts/db-0", "ds/x", "svc/y", "deploy/", "/x", "a/b/c", "app=web", "app in (a,b)"} {
		f.Add(s, "")
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, arg, selector string) {
		var args []string
		if arg != "" {
			args = []string{arg}
		}
		got, err := ParseTarget(args, selector)
		if err != nil {
			return
		}
		switch got.Kind {
		case KindSelector:
			if got.Name != "" || got.Selector == "" || arg != "" {
				t.Fatalf("selector target %+v from %q, %q", got, arg, selector)
			}
			if _, err := labels.Parse(got.Selector); err != nil {
				t.Fatalf("accepted selector %q does not parse: %v", got.Selector, err)
			}
		case KindPod, KindDeployment, KindStatefulSet, KindDaemonSet:
			if got.Name == "" || strings.Contains(got.Name, "/") || got.Selector != "" {
				t.Fatalf("named target %+v from %q, %q", got, arg, selector)
			}
			// The rendered target parses back to itself.
			again, err := ParseTarget([]string{got.String()}, "")
			if err != nil || again != got {
				t.Fatalf("%q reparsed as %+v, %v; want %+v", got.String(), again, err, got)
			}
		default:
			t.Fatalf("unknown kind in %+v", got)
		}
	})
}

const testNS = "shop"

// pod builds a running, ready, injected pod in testNS.
func pod(name string, lbls map[string]string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Labels: lbls, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			NodeName: "node-" + name,
			Containers: []corev1.Container{
				{Name: "app"},
				{Name: DefaultSidecarContainer},
			},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func selectorOf(l map[string]string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: l}
}

// newFakeKube is a Kube on a fake clientset holding objs.
func newFakeKube(t *testing.T, objs ...runtime.Object) (*Kube, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	k := newKube(nil, cs, Flags{Namespace: testNS, Context: "prod"}.withDefaults(), client.Options{})
	return k, cs
}

func TestResolve(t *testing.T) {
	web := map[string]string{"app": "web"}
	objs := []runtime.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS}, Spec: appsv1.DeploymentSpec{Selector: selectorOf(web)}},
		// A deployment whose name is a prefix of unrelated pods: the
		// selector, not the name, decides.
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "we", Namespace: testNS}, Spec: appsv1.DeploymentSpec{Selector: selectorOf(map[string]string{"app": "we"})}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: testNS}, Spec: appsv1.StatefulSetSpec{Selector: selectorOf(map[string]string{"app": "db"})}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: testNS}, Spec: appsv1.DaemonSetSpec{Selector: selectorOf(map[string]string{"app": "agent"})}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "empty", Namespace: testNS}, Spec: appsv1.DeploymentSpec{Selector: selectorOf(map[string]string{"app": "none"})}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: testNS}, Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{}}},
		pod("web-b", web, func(p *corev1.Pod) {
			// The app's restarts count; the sidecar's do not.
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: 3}, {Name: DefaultSidecarContainer, RestartCount: 5, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		}),
		pod("web-a", web, func(p *corev1.Pod) {
			p.Spec.Containers[1].Ports = []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}, {Name: SidecarPortName, ContainerPort: 7171}, {Name: SidecarTLSPortName, ContainerPort: 7443}}
		}),
		pod("web-c", web, func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
		pod("web-d", web, func(p *corev1.Pod) { p.Spec.Containers = p.Spec.Containers[:1] }),
		pod("web-e", web, func(p *corev1.Pod) {
			p.Status.Conditions[0].Status = corev1.ConditionFalse
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: DefaultSidecarContainer, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
		}),
		pod("web-f", web, func(p *corev1.Pod) {
			p.Status.Phase, p.Status.Reason = corev1.PodFailed, "Evicted"
		}),
		pod("web-g", web, func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }),
		pod("webhook-1", map[string]string{"app": "webhook"}),
		pod("db-0", map[string]string{"app": "db"}, func(p *corev1.Pod) {
			// A native sidecar: an init container that keeps running.
			p.Spec.Containers = p.Spec.Containers[:1]
			p.Spec.InitContainers = []corev1.Container{{Name: DefaultSidecarContainer}}
		}),
		pod("agent-x", map[string]string{"app": "agent"}),
	}
	notInjected := "not injected (no triage-sidecar container): label the namespace triage.dev/injection=enabled and restart it"
	tests := []struct {
		target  Target
		want    []string // "name:port[/tls port]:ready:skip" (+ " restarts=N" when N > 0)
		wantErr string
	}{
		{Target{Kind: KindPod, Name: "web-a"}, []string{"web-a:7171/7443:true:"}, ""},
		{Target{Kind: KindDeployment, Name: "web"}, []string{
			"web-a:7171/7443:true:",
			"web-b:7070:true: restarts=3",
			"web-c:7070:true:pod is Pending, not Running",
			"web-d:7070:true:" + notInjected,
			"web-e:7070:false:the triage-sidecar container is not running (CrashLoopBackOff)",
			"web-f:7070:true:pod is Failed (Evicted), not Running",
			"web-g:7070:true:terminating",
		}, ""},
		{Target{Kind: KindStatefulSet, Name: "db"}, []string{"db-0:7070:true:"}, ""},
		{Target{Kind: KindDaemonSet, Name: "agent"}, []string{"agent-x:7070:true:"}, ""},
		{Target{Kind: KindSelector, Selector: "app in (webhook, db)"}, []string{"db-0:7070:true:", "webhook-1:7070:true:"}, ""},
		{Target{Kind: KindDeployment, Name: "we"}, nil, `deployment/we has no pods (selector app=we) in namespace "shop" (context "prod")`},
		{Target{Kind: KindDeployment, Name: "empty"}, nil, "has no pods"},
		{Target{Kind: KindDeployment, Name: "all"}, nil, "empty spec.selector"},
		{Target{Kind: KindSelector, Selector: "app=nothing"}, nil, `no pods match -l app=nothing in namespace "shop"`},
		{Target{Kind: KindPod, Name: "ghost"}, nil, `pod/ghost not found in namespace "shop" (context "prod")`},
		{Target{Kind: KindDeployment, Name: "ghost"}, nil, `deployment/ghost not found in namespace "shop"`},
		{Target{Kind: KindStatefulSet, Name: "ghost"}, nil, `statefulset/ghost not found`},
	}
	k, _ := newFakeKube(t, objs...)
	for _, tt := range tests {
		t.Run(tt.target.String(), func(t *testing.T) {
			pods, err := k.Resolve(context.Background(), tt.target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve = %v, %v; want an error containing %q", pods, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			var got []string
			for _, p := range pods {
				port := strconv.Itoa(p.SidecarPort)
				if p.TLSPort != 0 {
					port += "/" + strconv.Itoa(p.TLSPort)
				}
				line := strings.Join([]string{p.Name, port, strconv.FormatBool(p.Ready), p.Skip}, ":")
				if p.Restarts > 0 {
					line += " restarts=" + strconv.Itoa(int(p.Restarts))
				}
				got = append(got, line)
				if p.Namespace != testNS || p.Node != "node-"+p.Name || p.UID != "uid-"+p.Name || p.IP == "" {
					t.Errorf("pod %+v lacks its namespace, node, UID or IP", p)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Resolve =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestResolveForbidden(t *testing.T) {
	tests := []struct {
		target   Target
		verb     string
		resource string
		want     string
	}{
		{Target{Kind: KindPod, Name: "web-a"}, "get", "pods", `you may not get pods in namespace "shop" (context "prod"): ask for RBAC "get" on "pods"`},
		{Target{Kind: KindDeployment, Name: "web"}, "get", "deployments", `you may not get deployments.apps in namespace "shop" (context "prod")`},
		{Target{Kind: KindSelector, Selector: "app=web"}, "list", "pods", `you may not list pods in namespace "shop" (context "prod"): ask for RBAC "list" on "pods"`},
	}
	for _, tt := range tests {
		t.Run(tt.target.String(), func(t *testing.T) {
			k, cs := newFakeKube(t)
			cs.PrependReactor(tt.verb, tt.resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: tt.resource}, "", errForbiddenReason)
			})
			_, err := k.Resolve(context.Background(), tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !apierrors.IsForbidden(err) {
				t.Fatalf("Resolve error = %v; want a Forbidden error containing %q", err, tt.want)
			}
		})
	}
}

var errForbiddenReason = errors.New("RBAC: access denied")
