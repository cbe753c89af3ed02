package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testPod(mut ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	for _, m := range mut {
		m(p)
	}
	return p
}

func podLabel(v string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Labels[LabelPodInject] = v }
}

func TestDecide(t *testing.T) {
	enabled := map[string]string{LabelNamespaceInjection: "enabled"}
	cfg := DefaultConfig()
	cfg.ExcludedNamespaces = []string{"monitoring"}
	tests := []struct {
		name   string
		pod    *corev1.Pod
		ns     Namespace
		inject bool
		reason string // substring of Decision.Reason
	}{
		{"namespace opts in", testPod(), Namespace{"shop", enabled}, true, ReasonNamespaceOptIn},
		{"namespace name from the pod", testPod(), Namespace{Labels: enabled}, true, ReasonNamespaceOptIn},
		{"nothing opts in", testPod(), Namespace{"shop", nil}, false, ReasonNotOptedIn},
		{"namespace label other value", testPod(), Namespace{"shop", map[string]string{LabelNamespaceInjection: "true"}}, false, ReasonNotOptedIn},
		{"namespace label disabled", testPod(), Namespace{"shop", map[string]string{LabelNamespaceInjection: "disabled"}}, false, ReasonNotOptedIn},
		{"pod opts in without namespace", testPod(podLabel("true")), Namespace{"shop", nil}, true, ReasonPodOptIn},
		{"pod opts out of enabled namespace", testPod(podLabel("false")), Namespace{"shop", enabled}, false, ReasonPodOptOut},
		{"pod opt-in wins over namespace", testPod(podLabel("true")), Namespace{"shop", enabled}, true, ReasonPodOptIn},
		{"invalid pod label, namespace enabled", testPod(podLabel("yes")), Namespace{"shop", enabled}, true, ReasonNamespaceOptIn},
		{"invalid pod label, namespace not enabled", testPod(podLabel("yes")), Namespace{"shop", nil}, false, "neither true nor false"},
		{"kube-system", testPod(podLabel("true")), Namespace{"kube-system", enabled}, false, `"kube-system" is excluded`},
		{"kube-public", testPod(), Namespace{"kube-public", enabled}, false, "excluded"},
		{"kube-node-lease", testPod(), Namespace{"kube-node-lease", enabled}, false, "excluded"},
		{"own namespace", testPod(podLabel("true")), Namespace{"triage-system", enabled}, false, `"triage-system" is excluded`},
		{"configured exclusion", testPod(), Namespace{"monitoring", enabled}, false, "excluded"},
		{"hostNetwork", testPod(func(p *corev1.Pod) { p.Spec.HostNetwork = true }), Namespace{"shop", enabled}, false, ReasonHostNetwork},
		{"hostNetwork not opted in", testPod(func(p *corev1.Pod) { p.Spec.HostNetwork = true }), Namespace{"shop", nil}, false, ReasonNotOptedIn},
		{"windows", testPod(func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }), Namespace{"shop", enabled}, false, ReasonWindows},
		{"linux os", testPod(func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Linux} }), Namespace{"shop", enabled}, true, ReasonNamespaceOptIn},
		{"already injected", testPod(func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationStatus: "{}"} }), Namespace{"shop", enabled}, false, ReasonAlreadyInjected},
		{"already injected wins over pod label", testPod(podLabel("true"), func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationStatus: ""} }), Namespace{"shop", nil}, false, ReasonAlreadyInjected},
		{"no containers", testPod(func(p *corev1.Pod) { p.Spec.Containers = nil }), Namespace{"shop", enabled}, false, ReasonNoContainers},
		{"container name taken", testPod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "triage-sidecar"})
		}), Namespace{"shop", enabled}, false, `container named "triage-sidecar"`},
		{"init container name taken", testPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "triage-sidecar"}}
		}), Namespace{"shop", enabled}, false, `container named "triage-sidecar"`},
		{"volume name taken", testPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "triage-agent"}}
		}), Namespace{"shop", enabled}, false, `volume named "triage-agent"`},
		{"nil pod", nil, Namespace{"shop", enabled}, false, "no pod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.pod, tc.ns, cfg)
			if d.Inject != tc.inject || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Decide = %+v, want inject=%v reason containing %q", d, tc.inject, tc.reason)
			}
		})
	}
}

func TestDecideOwnNamespaceConfigurable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OwnNamespace = "observability"
	ns := Namespace{"observability", map[string]string{LabelNamespaceInjection: "enabled"}}
	if d := Decide(testPod(), ns, cfg); d.Inject {
		t.Errorf("own namespace injected: %+v", d)
	}
	if d := Decide(testPod(), Namespace{"triage-system", ns.Labels}, cfg); !d.Inject {
		t.Errorf("triage-system is not triage's namespace here, yet: %+v", d)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"image":      func(c *Config) { c.Image = "" },
		"container":  func(c *Config) { c.ContainerName = "" },
		"volume":     func(c *Config) { c.VolumeName = "" },
		"socket dir": func(c *Config) { c.SocketDir = "run/triage" },
		"socket":     func(c *Config) { c.SocketFile = "" },
		"mode":       func(c *Config) { c.DefaultMode = "sidecar" },
		"root uid":   func(c *Config) { c.DefaultUID = 0 },
		"probe":      func(c *Config) { c.ProbeCommand = nil },
	} {
		c := DefaultConfig()
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := Mutate(testPod(), Namespace{}, c); err == nil {
			t.Errorf("%s: Mutate accepted the invalid config", name)
		}
	}
}
