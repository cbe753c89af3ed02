package inject

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	psaapi "k8s.io/pod-security-admission/api"
)

func ptr[T any](v T) *T { return &v }

// restrictedPod passes the restricted Pod Security Standard.
func restrictedPod(mut ...func(*corev1.Pod)) *corev1.Pod {
	p := testPod(func(p *corev1.Pod) {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
	})
	for _, m := range mut {
		m(p)
	}
	return p
}

func annotate(kv ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func enforce(level string) map[string]string {
	m := map[string]string{LabelNamespaceInjection: "enabled"}
	if level != "" {
		m[psaapi.EnforceLevelLabel] = level
	}
	return m
}

// TestMutateMatrix runs every combination of mode, capture, process sharing,
// namespace level and pod shape through Mutate and checks the properties that
// must always hold: the patch turns the input into the output, the output is
// admissible wherever the input was, the input is not modified, and a second
// Mutate changes nothing.
func TestMutateMatrix(t *testing.T) {
	cfg := testConfig()
	pods := map[string]*corev1.Pod{
		"plain":      testPod(),
		"restricted": restrictedPod(),
		"uid":        restrictedPod(func(p *corev1.Pod) { p.Spec.SecurityContext.RunAsUser = ptr(int64(1000)) }),
		"root":       testPod(func(p *corev1.Pod) { p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr(int64(0))} }),
		"privileged": testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr(true)}
		}),
		"sidecars": restrictedPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "i", SecurityContext: p.Spec.Containers[0].SecurityContext.DeepCopy()},
				{Name: "proxy", Image: "p", RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways), SecurityContext: p.Spec.Containers[0].SecurityContext.DeepCopy()}}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "second", Image: "s", SecurityContext: p.Spec.Containers[0].SecurityContext.DeepCopy()})
		}),
	}
	for podName, base := range pods {
		for _, level := range []string{"", "privileged", "baseline", "restricted", "bogus"} {
			for _, mode := range []string{"", ModeNative, ModeClassic} {
				for _, capture := range []string{"", "true"} {
					for _, share := range []string{"", "true"} {
						name := fmt.Sprintf("%s/%s/%s/capture=%s/share=%s", podName, level, mode, capture, share)
						t.Run(name, func(t *testing.T) {
							pod := base.DeepCopy()
							ann := []string{}
							if mode != "" {
								ann = append(ann, AnnotationSidecarMode, mode)
							}
							if capture != "" {
								ann = append(ann, AnnotationCapture, capture)
							}
							if share != "" {
								ann = append(ann, AnnotationShareProcessNamespace, share)
							}
							annotate(ann...)(pod)
							before := pod.DeepCopy()
							nsLabels := enforce(level)
							res, err := Mutate(pod, Namespace{"shop", nsLabels}, cfg)
							if err != nil {
								t.Fatal(err)
							}
							if !reflect.DeepEqual(pod, before) {
								t.Fatal("Mutate modified its input")
							}
							if !res.Injected {
								t.Fatalf("not injected: %s", res.Decision.Reason)
							}
							checkPatchMatchesDiff(t, pod, res.Pod, res.Patch)
							patched, err := ApplyPatch([]byte(mustJSON(t, pod)), res.Patch, false)
							if err != nil {
								t.Fatal(err)
							}
							if got := mustJSON(t, decodePod(t, patched)); got != mustJSON(t, res.Pod) {
								t.Fatalf("patch result differs:\n%s\n%s", got, mustJSON(t, res.Pod))
							}
							checkAdmissible(t, pod, res.Pod, nsLabels, res.Status.Capture)
							checkSidecar(t, res.Pod, cfg)
							checkStatusAnnotation(t, res.Pod, res.Status)

							wantCapture := capture == "true" && (level == "" || level == "privileged")
							if res.Status.Capture != wantCapture {
								t.Errorf("capture %v, want %v (%s)", res.Status.Capture, wantCapture, res.Status.CaptureWithheld)
							}
							if capture == "true" && !wantCapture && (res.Status.CaptureWithheld == "" || !hasWarning(res.Warnings, "capture profile withheld")) {
								t.Errorf("capture withheld without a reason: %+v %q", res.Status, res.Warnings)
							}
							if (level == "bogus") != hasWarning(res.Warnings, "invalid pod-security labels") {
								t.Errorf("warnings %q", res.Warnings)
							}
							wantMode := ModeNative
							if mode == ModeClassic {
								wantMode = ModeClassic
							}
							if res.Status.Mode != wantMode {
								t.Errorf("mode %s, want %s", res.Status.Mode, wantMode)
							}
							if got := res.Pod.Spec.ShareProcessNamespace != nil && *res.Pod.Spec.ShareProcessNamespace; got != (share == "true") {
								t.Errorf("shareProcessNamespace %v", got)
							}

							again, err := Mutate(res.Pod, Namespace{"shop", nsLabels}, cfg)
							if err != nil {
								t.Fatal(err)
							}
							if again.Injected || again.Patch != nil || !reflect.DeepEqual(again.Pod, res.Pod) {
								t.Errorf("second Mutate changed the pod: %s", again.Patch)
							}
						})
					}
				}
			}
		}
	}
}

func hasWarning(ws []string, sub string) bool {
	for _, w := range ws {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func sidecarOf(t *testing.T, p *corev1.Pod) *corev1.Container {
	t.Helper()
	for _, c := range allContainers(&p.Spec) {
		if c.Name == DefaultConfig().ContainerName {
			return c
		}
	}
	t.Fatal("no sidecar")
	return nil
}

func TestMutateNotOptedIn(t *testing.T) {
	pod := testPod()
	res, err := Mutate(pod, Namespace{"shop", nil}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if res.Injected || res.Patch != nil || res.Warnings != nil || !reflect.DeepEqual(res.Pod, pod) || res.Pod == pod {
		t.Errorf("not opted in, yet %+v", res)
	}
	if _, err := Mutate(nil, Namespace{}, testConfig()); err == nil {
		t.Error("nil pod accepted")
	}
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name           string
		pod, container *corev1.SecurityContext
		podSC          *corev1.PodSecurityContext
		uid            int64
		gid            *int64
		source         string
	}{
		{name: "nothing set", uid: 65532, gid: ptr(int64(65532)), source: "default"},
		{name: "pod uid and gid", podSC: &corev1.PodSecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(3000))}, uid: 1000, gid: ptr(int64(3000)), source: "pod"},
		{name: "pod uid only", podSC: &corev1.PodSecurityContext{RunAsUser: ptr(int64(1000))}, uid: 1000, source: "pod"},
		{name: "container wins", podSC: &corev1.PodSecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(3000))},
			container: &corev1.SecurityContext{RunAsUser: ptr(int64(2000))}, uid: 2000, gid: ptr(int64(3000)), source: "container"},
		{name: "container gid wins", podSC: &corev1.PodSecurityContext{RunAsGroup: ptr(int64(3000))},
			container: &corev1.SecurityContext{RunAsUser: ptr(int64(2000)), RunAsGroup: ptr(int64(4000))}, uid: 2000, gid: ptr(int64(4000)), source: "container"},
		{name: "pod root", podSC: &corev1.PodSecurityContext{RunAsUser: ptr(int64(0))}, uid: 65532, gid: ptr(int64(65532)), source: "default"},
		{name: "container root over pod uid", podSC: &corev1.PodSecurityContext{RunAsUser: ptr(int64(1000))},
			container: &corev1.SecurityContext{RunAsUser: ptr(int64(0))}, uid: 65532, gid: ptr(int64(65532)), source: "default"},
		{name: "group without user", podSC: &corev1.PodSecurityContext{RunAsGroup: ptr(int64(3000))}, uid: 65532, gid: ptr(int64(65532)), source: "default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(func(p *corev1.Pod) {
				p.Spec.SecurityContext = tc.podSC
				p.Spec.Containers[0].SecurityContext = tc.container
			})
			res, err := Mutate(pod, Namespace{"shop", enforce("")}, testConfig())
			if err != nil {
				t.Fatal(err)
			}
			sc := sidecarOf(t, res.Pod).SecurityContext
			if *sc.RunAsUser != tc.uid || !reflect.DeepEqual(sc.RunAsGroup, tc.gid) || res.Status.UIDSource != tc.source || res.Status.RunAsUser != tc.uid {
				t.Errorf("uid %d gid %v source %s; want %d %v %s", *sc.RunAsUser, sc.RunAsGroup, res.Status.UIDSource, tc.uid, tc.gid, tc.source)
			}
		})
	}
}

func TestResourceAnnotations(t *testing.T) {
	q := resource.MustParse
	tests := []struct {
		name     string
		ann      []string
		req, lim corev1.ResourceList
		warnings []string
	}{
		{name: "defaults", req: corev1.ResourceList{"cpu": q("10m"), "memory": q("32Mi")}, lim: corev1.ResourceList{"cpu": q("200m"), "memory": q("128Mi")}},
		{name: "all overridden", ann: []string{AnnotationCPURequest, "50m", AnnotationMemoryRequest, "64Mi", AnnotationCPULimit, "1", AnnotationMemoryLimit, "1Gi"},
			req: corev1.ResourceList{"cpu": q("50m"), "memory": q("64Mi")}, lim: corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")}},
		{name: "spaces trimmed", ann: []string{AnnotationCPURequest, " 20m "},
			req: corev1.ResourceList{"cpu": q("20m"), "memory": q("32Mi")}, lim: corev1.ResourceList{"cpu": q("200m"), "memory": q("128Mi")}},
		{name: "garbage", ann: []string{AnnotationCPURequest, "lots", AnnotationMemoryLimit, "12 GB"},
			req: corev1.ResourceList{"cpu": q("10m"), "memory": q("32Mi")}, lim: corev1.ResourceList{"cpu": q("200m"), "memory": q("128Mi")},
			warnings: []string{AnnotationCPURequest + `="lots" ignored`, AnnotationMemoryLimit + `="12 GB" ignored`}},
		{name: "zero and negative", ann: []string{AnnotationCPULimit, "0", AnnotationMemoryRequest, "-5Mi"},
			req: corev1.ResourceList{"cpu": q("10m"), "memory": q("32Mi")}, lim: corev1.ResourceList{"cpu": q("200m"), "memory": q("128Mi")},
			warnings: []string{"greater than zero", "greater than zero"}},
		{name: "sub-millicore cpu", ann: []string{AnnotationCPURequest, "100u"},
			req: corev1.ResourceList{"cpu": q("10m"), "memory": q("32Mi")}, lim: corev1.ResourceList{"cpu": q("200m"), "memory": q("128Mi")},
			warnings: []string{"below 1m"}},
		{name: "request above default limit clamped", ann: []string{AnnotationMemoryRequest, "512Mi"},
			req: corev1.ResourceList{"cpu": q("10m"), "memory": q("128Mi")}, lim: corev1.ResourceList{"cpu": q("200m"), "memory": q("128Mi")},
			warnings: []string{"exceeds its limit"}},
		{name: "limit below default request clamps the request", ann: []string{AnnotationCPULimit, "5m"},
			req: corev1.ResourceList{"cpu": q("5m"), "memory": q("32Mi")}, lim: corev1.ResourceList{"cpu": q("5m"), "memory": q("128Mi")},
			warnings: []string{"exceeds its limit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Mutate(testPod(annotate(tc.ann...)), Namespace{"shop", enforce("")}, testConfig())
			if err != nil {
				t.Fatal(err)
			}
			r := sidecarOf(t, res.Pod).Resources
			if !equalResources(r.Requests, tc.req) || !equalResources(r.Limits, tc.lim) {
				t.Errorf("requests %v limits %v; want %v %v", r.Requests, r.Limits, tc.req, tc.lim)
			}
			if len(res.Warnings) != len(tc.warnings) {
				t.Fatalf("warnings %q, want %d", res.Warnings, len(tc.warnings))
			}
			for i, w := range tc.warnings {
				if !strings.Contains(res.Warnings[i], w) {
					t.Errorf("warning %d %q lacks %q", i, res.Warnings[i], w)
				}
			}
		})
	}
}

func equalResources(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

func TestAnnotationsAndConflicts(t *testing.T) {
	cfg := testConfig()
	t.Run("default container kept", func(t *testing.T) {
		res, _ := Mutate(testPod(annotate(AnnotationDefaultContainer, "other")), Namespace{"shop", enforce("")}, cfg)
		if got := res.Pod.Annotations[AnnotationDefaultContainer]; got != "other" {
			t.Errorf("default-container %q", got)
		}
	})
	t.Run("tls secret", func(t *testing.T) {
		nsLabels := enforce("restricted")
		in := testPod(annotate(AnnotationTLSSecret, "web-triage-tls"))
		res, err := Mutate(in, Namespace{"shop", nsLabels}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		sc := sidecarOf(t, res.Pod)
		for _, want := range []string{"--tls-addr=:7443", "--tls-cert=/var/run/secrets/triage.dev/tls/tls.crt", "--tls-key=/var/run/secrets/triage.dev/tls/tls.key", "--addr=127.0.0.1:7070", "--insecure-local"} {
			if !slices.Contains(sc.Args, want) {
				t.Errorf("args %q lack %s", sc.Args, want)
			}
		}
		if !slices.ContainsFunc(sc.Ports, func(p corev1.ContainerPort) bool { return p.Name == "triage-tls" && p.ContainerPort == 7443 }) {
			t.Errorf("ports %+v: no triage-tls", sc.Ports)
		}
		i := slices.IndexFunc(res.Pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == cfg.TLSVolumeName })
		if i < 0 || res.Pod.Spec.Volumes[i].Secret == nil || res.Pod.Spec.Volumes[i].Secret.SecretName != "web-triage-tls" {
			t.Fatalf("no Secret volume web-triage-tls")
		}
		for _, c := range res.Pod.Spec.Containers {
			if slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == cfg.TLSVolumeName }) {
				t.Errorf("app container %s mounts the sidecar's key", c.Name)
			}
		}
		if res.Status.TLSSecret != "web-triage-tls" {
			t.Errorf("status %+v", res.Status)
		}
		checkAdmissible(t, in, res.Pod, nsLabels, false)

		bad, _ := Mutate(testPod(annotate(AnnotationTLSSecret, "Not_A_Name")), Namespace{"shop", nsLabels}, cfg)
		if slices.ContainsFunc(sidecarOf(t, bad.Pod).Args, func(a string) bool { return strings.HasPrefix(a, "--tls-") }) ||
			!slices.ContainsFunc(bad.Warnings, func(w string) bool { return strings.Contains(w, AnnotationTLSSecret) }) {
			t.Errorf("a bad Secret name: args %q warnings %q; want no TLS flags and a warning", sidecarOf(t, bad.Pod).Args, bad.Warnings)
		}
	})
	t.Run("default container set to first app container", func(t *testing.T) {
		pod := testPod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b", Image: "b"})
		})
		res, _ := Mutate(pod, Namespace{"shop", enforce("")}, cfg)
		if got := res.Pod.Annotations[AnnotationDefaultContainer]; got != "web" {
			t.Errorf("default-container %q", got)
		}
	})
	for in, want := range map[string]string{
		"":                   "triage-agent",
		"cache":              "cache,triage-agent",
		"cache, tmp":         "cache,tmp,triage-agent",
		" ,cache,,":          "cache,triage-agent",
		"triage-agent,cache": "triage-agent,cache",
	} {
		t.Run("safe-to-evict "+in, func(t *testing.T) {
			pod := testPod()
			if in != "" {
				annotate(AnnotationSafeToEvictLocalVolumes, in)(pod)
			}
			res, _ := Mutate(pod, Namespace{"shop", enforce("")}, cfg)
			if got := res.Pod.Annotations[AnnotationSafeToEvictLocalVolumes]; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	t.Run("existing mount and env", func(t *testing.T) {
		pod := testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "run", MountPath: "/var/run/triage"}}
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: AgentSocketEnv, Value: "/tmp/a.sock"}}
			p.Spec.Volumes = []corev1.Volume{{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		})
		res, err := Mutate(pod, Namespace{"shop", enforce("")}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := res.Pod.Spec.Containers[0]
		if len(c.VolumeMounts) != 1 || len(c.Env) != 1 || c.Env[0].Value != "/tmp/a.sock" {
			t.Errorf("app container %+v", c)
		}
		if !hasWarning(res.Warnings, "already mounts") || !hasWarning(res.Warnings, "sets "+AgentSocketEnv) {
			t.Errorf("warnings %q", res.Warnings)
		}
	})
	t.Run("existing env with the same value", func(t *testing.T) {
		pod := testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: AgentSocketEnv, Value: cfg.SocketPath()}}
		})
		res, _ := Mutate(pod, Namespace{"shop", enforce("")}, cfg)
		if len(res.Warnings) != 0 || len(res.Pod.Spec.Containers[0].Env) != 1 {
			t.Errorf("warnings %q env %v", res.Warnings, res.Pod.Spec.Containers[0].Env)
		}
	})
	t.Run("pod already shares processes", func(t *testing.T) {
		pod := testPod(func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr(true) })
		res, _ := Mutate(pod, Namespace{"shop", enforce("")}, cfg)
		if !res.Status.ShareProcessNamespace {
			t.Error("status does not say the namespace is shared")
		}
	})
	t.Run("config args and version", func(t *testing.T) {
		c := cfg
		c.Args = []string{"--addr=127.0.0.1:7070"}
		c.Version = "v9"
		res, _ := Mutate(testPod(), Namespace{"shop", enforce("")}, c)
		sc := sidecarOf(t, res.Pod)
		if !reflect.DeepEqual(sc.Args[len(sc.Args)-2:], []string{"--addr=127.0.0.1:7070", "--agent-socket=/var/run/triage/agent.sock"}) {
			t.Errorf("args %q", sc.Args)
		}
		var st Status
		if err := json.Unmarshal([]byte(res.Pod.Annotations[AnnotationStatus]), &st); err != nil || st.Version != "v9" {
			t.Errorf("status %+v %v", st, err)
		}
	})
	t.Run("capture profile", func(t *testing.T) {
		res, _ := Mutate(testPod(annotate(AnnotationCapture, "true")), Namespace{"shop", enforce("privileged")}, cfg)
		sc := sidecarOf(t, res.Pod).SecurityContext
		if !reflect.DeepEqual(sc.Capabilities.Add, []corev1.Capability{"NET_RAW"}) || !*sc.AllowPrivilegeEscalation || !*sc.RunAsNonRoot {
			t.Errorf("capture securityContext %+v", sc)
		}
		res, _ = Mutate(testPod(annotate(AnnotationCapture, "true")), Namespace{"shop", enforce("baseline")}, cfg)
		sc = sidecarOf(t, res.Pod).SecurityContext
		if sc.Capabilities.Add != nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("baseline got the capture profile: %+v", sc)
		}
		var st Status
		_ = json.Unmarshal([]byte(res.Pod.Annotations[AnnotationStatus]), &st)
		if st.Capture || !strings.Contains(st.CaptureWithheld, `"baseline"`) {
			t.Errorf("status %+v", st)
		}
	})
	t.Run("pod security defaults", func(t *testing.T) {
		c := cfg
		c.PodSecurityDefaults.Enforce = psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
		res, _ := Mutate(testPod(annotate(AnnotationCapture, "true")), Namespace{"shop", enforce("")}, c)
		if res.Status.Capture || res.Status.PodSecurity != "restricted:latest" {
			t.Errorf("cluster default restricted ignored: %+v", res.Status)
		}
	})
}

// checkPatchMatchesDiff checks that Mutate's patch, built from the mutation,
// is byte for byte the generic diff (CreatePatch) of the two pods.
func checkPatchMatchesDiff(t testing.TB, from, to *corev1.Pod, patch []byte) {
	t.Helper()
	want, err := CreatePatch(from, to)
	if err != nil {
		t.Fatal(err)
	}
	if string(patch) != string(want) {
		t.Fatalf("patch differs from CreatePatch:\n%s\n%s", patch, want)
	}
}
