package kubetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	psaapi "k8s.io/pod-security-admission/api"

	"github.com/triage-sh/triage/internal/inject"
)

// The configuration registered is the manifest's: the policies that keep a
// broken webhook from ever stopping a pod reach the API server as written.
func TestRegisteredConfiguration(t *testing.T) {
	c := need(t)
	mwc, err := c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx(t), "triage-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(mwc.Webhooks) != 2 {
		t.Fatalf("%d webhooks, want 2", len(mwc.Webhooks))
	}
	for _, wh := range mwc.Webhooks {
		if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("%s: failurePolicy %v, want Ignore", wh.Name, wh.FailurePolicy)
		}
		if wh.TimeoutSeconds == nil || *wh.TimeoutSeconds != 3 {
			t.Errorf("%s: timeoutSeconds %v, want 3", wh.Name, wh.TimeoutSeconds)
		}
		if wh.ReinvocationPolicy == nil || *wh.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
			t.Errorf("%s: reinvocationPolicy %v, want IfNeeded", wh.Name, wh.ReinvocationPolicy)
		}
		if wh.ClientConfig.URL == nil || *wh.ClientConfig.URL != c.hook.url() {
			t.Errorf("%s: url %v, want %s", wh.Name, wh.ClientConfig.URL, c.hook.url())
		}
	}
}

// A pod in an opted-in namespace gets the sidecar as specified.
func TestInjectsInOptedInNamespace(t *testing.T) {
	c := need(t)
	ns := namespace(t, c, map[string]string{inject.LabelNamespaceInjection: "enabled"})
	p := createPod(t, c, ns, newPod("app"))

	sc := sidecar(t, p)
	if !slices.ContainsFunc(p.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == cfg.ContainerName }) {
		t.Errorf("sidecar is not a native sidecar (init container); init containers %v", names(p.Spec.InitContainers))
	}
	if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar restartPolicy %v, want Always", sc.RestartPolicy)
	}
	if sc.StartupProbe == nil {
		t.Error("sidecar has no startup probe")
	}
	if sc.Image != cfg.Image {
		t.Errorf("sidecar image %q, want %q", sc.Image, cfg.Image)
	}
	if sc.Resources.Requests.Cpu().IsZero() || sc.Resources.Limits.Memory().IsZero() {
		t.Errorf("sidecar resources %v, want requests and limits", sc.Resources)
	}
	sec := sc.SecurityContext
	switch {
	case sec == nil:
		t.Error("sidecar has no securityContext")
	case sec.RunAsNonRoot == nil || !*sec.RunAsNonRoot,
		sec.ReadOnlyRootFilesystem == nil || !*sec.ReadOnlyRootFilesystem,
		sec.AllowPrivilegeEscalation == nil || *sec.AllowPrivilegeEscalation,
		sec.Capabilities == nil || !slices.Contains(sec.Capabilities.Drop, "ALL"),
		sec.Capabilities != nil && len(sec.Capabilities.Add) != 0:
		t.Errorf("sidecar securityContext %+v is not the restricted profile", sec)
	}

	// The socket volume: memory-backed, size-limited, mounted in the app.
	var vol *corev1.Volume
	for i := range p.Spec.Volumes {
		if p.Spec.Volumes[i].Name == cfg.VolumeName {
			vol = &p.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.EmptyDir == nil || vol.EmptyDir.Medium != corev1.StorageMediumMemory || vol.EmptyDir.SizeLimit == nil {
		t.Errorf("socket volume %+v, want a memory-backed, size-limited emptyDir", vol)
	}
	app := p.Spec.Containers[0]
	if !slices.ContainsFunc(app.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == cfg.VolumeName && m.MountPath == cfg.SocketDir }) {
		t.Errorf("app mounts %v, want %s at %s", app.VolumeMounts, cfg.VolumeName, cfg.SocketDir)
	}
	if !slices.Contains(app.Env, corev1.EnvVar{Name: inject.AgentSocketEnv, Value: cfg.SocketPath()}) {
		t.Errorf("app env %v, want %s=%s", app.Env, inject.AgentSocketEnv, cfg.SocketPath())
	}

	st := status(t, p)
	if st.Container != cfg.ContainerName || st.Mode != inject.ModeNative || st.Volume != cfg.VolumeName || st.Capture {
		t.Errorf("status %+v", st)
	}
	if got := p.Annotations[inject.AnnotationDefaultContainer]; got != "app" {
		t.Errorf("%s=%q, want app", inject.AnnotationDefaultContainer, got)
	}
	if got := p.Annotations[inject.AnnotationSafeToEvictLocalVolumes]; !strings.Contains(got, cfg.VolumeName) {
		t.Errorf("%s=%q, want it to list %s", inject.AnnotationSafeToEvictLocalVolumes, got, cfg.VolumeName)
	}
	if n := c.hook.callsFor(ns + "/app"); n != 1 {
		t.Errorf("webhook called %d times for the pod, want 1", n)
	}
}

// Pods that did not opt in never reach the webhook: the selectors keep them
// out, so the webhook's availability cannot matter to them.
func TestNotOptedInNeverCallsWebhook(t *testing.T) {
	c := need(t)
	t.Run("unlabelled namespace", func(t *testing.T) {
		ns := namespace(t, c, nil)
		p := createPod(t, c, ns, newPod("app"))
		assertUntouched(t, p)
		if n := c.hook.callsFor(ns); n != 0 {
			t.Errorf("webhook called %d times for namespace %s, want 0", n, ns)
		}
	})
	t.Run("pod opts out", func(t *testing.T) {
		ns := namespace(t, c, map[string]string{inject.LabelNamespaceInjection: "enabled"})
		pod := newPod("app")
		pod.Labels[inject.LabelPodInject] = "false"
		p := createPod(t, c, ns, pod)
		assertUntouched(t, p)
		if n := c.hook.callsFor(ns); n != 0 {
			t.Errorf("webhook called %d times for namespace %s, want 0", n, ns)
		}
	})
	t.Run("kube-system labelled", func(t *testing.T) {
		cx := ctx(t)
		ks, err := c.Client().CoreV1().Namespaces().Get(cx, "kube-system", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ks.Labels == nil {
			ks.Labels = map[string]string{}
		}
		ks.Labels[inject.LabelNamespaceInjection] = "enabled"
		if _, err := c.Client().CoreV1().Namespaces().Update(cx, ks, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := newPod("app-" + randomHex(3))
		pod.Labels[inject.LabelPodInject] = "true"
		p := createPod(t, c, "kube-system", pod)
		assertUntouched(t, p)
		if n := c.hook.callsFor("kube-system"); n != 0 {
			t.Errorf("webhook called %d times for kube-system, want 0", n)
		}
	})
}

// The pod's label opts it in where the namespace did not.
func TestPodOptInInUnlabelledNamespace(t *testing.T) {
	c := need(t)
	ns := namespace(t, c, nil)
	pod := newPod("app")
	pod.Labels[inject.LabelPodInject] = "true"
	p := createPod(t, c, ns, pod)
	if n := sidecarCount(p); n != 1 {
		t.Fatalf("%d sidecars, want 1", n)
	}
	if st := status(t, p); st.Reason != inject.ReasonPodOptIn {
		t.Errorf("status reason %q, want %q", st.Reason, inject.ReasonPodOptIn)
	}
	if n := c.hook.callsFor(ns + "/app"); n != 1 {
		t.Errorf("webhook called %d times, want 1", n)
	}
}

func psaLabels(level psaapi.Level) map[string]string {
	return map[string]string{
		inject.LabelNamespaceInjection: "enabled",
		psaapi.EnforceLevelLabel:       string(level),
		psaapi.EnforceVersionLabel:     psaapi.VersionLatest,
	}
}

// The real PodSecurity admission plugin admits injected pods at baseline and
// restricted, and rejects what those levels forbid (so it is really on).
func TestPodSecurityAdmitsInjectedPods(t *testing.T) {
	c := need(t)
	for _, level := range []psaapi.Level{psaapi.LevelBaseline, psaapi.LevelRestricted} {
		t.Run(string(level), func(t *testing.T) {
			ns := namespace(t, c, psaLabels(level))

			// The plugin is on: a pod the level forbids is rejected.
			bad := newPod("forbidden")
			if level == psaapi.LevelBaseline {
				bad.Spec.HostPID = true
			}
			_, err := c.Client().CoreV1().Pods(ns).Create(ctx(t), bad, metav1.CreateOptions{})
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
				t.Fatalf("a pod violating %s was not rejected by PodSecurity: %v", level, err)
			}

			var pods []*corev1.Pod
			if level == psaapi.LevelBaseline {
				pods = append(pods, newPod("plain")) // no securityContext at all
			}
			pods = append(pods, restrictedPod("restricted"))
			for _, pod := range pods {
				p := createPod(t, c, ns, pod)
				if n := sidecarCount(p); n != 1 {
					t.Fatalf("pod %s: %d sidecars, want 1", p.Name, n)
				}
				st := status(t, p)
				if want := string(level) + ":latest"; st.PodSecurity != want {
					t.Errorf("pod %s: status podSecurity %q, want %q", p.Name, st.PodSecurity, want)
				}
				if p.Name == "restricted" && (st.RunAsUser != 1000 || st.UIDSource != "pod") {
					t.Errorf("pod %s: sidecar runs as %d (%s), want the app's 1000 (pod)", p.Name, st.RunAsUser, st.UIDSource)
				}
				if p.Name == "plain" && st.RunAsUser != cfg.DefaultUID {
					t.Errorf("pod %s: sidecar runs as %d, want the default %d", p.Name, st.RunAsUser, cfg.DefaultUID)
				}
			}
		})
	}
}

// The capture profile (NET_RAW) is granted only where the namespace's
// enforce level allows it; elsewhere it is withheld with a warning the
// client sees, and the pod is still admitted with the sidecar.
func TestCaptureProfileOnlyWhereAllowed(t *testing.T) {
	c := need(t)
	cases := []struct {
		name   string
		labels map[string]string
		grant  bool
	}{
		{"privileged", psaLabels(psaapi.LevelPrivileged), true},
		{"no-pod-security-labels", map[string]string{inject.LabelNamespaceInjection: "enabled"}, true}, // the API server's default is privileged
		{"baseline", psaLabels(psaapi.LevelBaseline), false},
		{"restricted", psaLabels(psaapi.LevelRestricted), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t, c, tc.labels)
			var warns warnings
			client, err := kubernetes.NewForConfig(c.restConfig(&warns))
			if err != nil {
				t.Fatal(err)
			}
			pod := restrictedPod("capture")
			pod.Annotations = map[string]string{inject.AnnotationCapture: "true"}
			p, err := client.CoreV1().Pods(ns).Create(ctx(t), pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("pod asking for capture was not admitted: %v", err)
			}
			sc := sidecar(t, p)
			st := status(t, p)
			netRaw := sc.SecurityContext != nil && sc.SecurityContext.Capabilities != nil &&
				slices.Contains(sc.SecurityContext.Capabilities.Add, "NET_RAW")
			withheld := warns.containing("capture profile withheld")
			if tc.grant {
				if !st.Capture || !netRaw {
					t.Errorf("capture not granted: status %+v, sidecar capabilities %+v", st, sc.SecurityContext.Capabilities)
				}
				if len(withheld) != 0 {
					t.Errorf("unexpected warnings %q", withheld)
				}
				return
			}
			if st.Capture || netRaw {
				t.Errorf("capture granted under %s: status %+v", tc.name, st)
			}
			if st.CaptureWithheld == "" {
				t.Errorf("status %+v does not say why capture was withheld", st)
			}
			if len(withheld) == 0 {
				t.Errorf("the client saw no warning about the withheld capture profile; warnings: %q", warns.list)
			} else {
				t.Logf("warning seen by the client: %s", withheld[0])
			}
		})
	}
}

// failurePolicy Ignore: with the webhook down, pods are still created,
// without the sidecar.
func TestWebhookDownPodsStillCreated(t *testing.T) {
	c := need(t)
	ns := namespace(t, c, map[string]string{inject.LabelNamespaceInjection: "enabled"})
	c.hook.stop()
	t.Cleanup(func() {
		if err := c.hook.start(); err != nil {
			t.Fatalf("restarting the webhook: %v", err)
		}
		cx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // t.Context() is done in Cleanup
		defer cancel()
		if err := c.waitForMutation(cx, ns, func(p *corev1.Pod) bool { return sidecarCount(p) == 1 }); err != nil {
			t.Fatalf("webhook not back after restart: %v", err)
		}
	})
	start := time.Now()
	p := createPod(t, c, ns, newPod("app"))
	t.Logf("pod created in %v with the webhook down", time.Since(start).Round(time.Millisecond))
	assertUntouched(t, p)
	if n := c.hook.callsFor(ns); n != 0 {
		t.Errorf("webhook counted %d calls while down", n)
	}
}

// A webhook that hangs costs a pod at most timeoutSeconds (3), and the pod
// is created without the sidecar.
func TestWebhookHangsPodsStillCreated(t *testing.T) {
	c := need(t)
	ns := namespace(t, c, map[string]string{inject.LabelNamespaceInjection: "enabled"})
	c.hook.hang.Store(true)
	t.Cleanup(func() { c.hook.hang.Store(false) })
	start := time.Now()
	p := createPod(t, c, ns, newPod("app"))
	took := time.Since(start)
	t.Logf("pod created in %v with the webhook hanging", took.Round(time.Millisecond))
	assertUntouched(t, p)
	if n := c.hook.callsFor(ns + "/app"); n != 1 {
		t.Errorf("webhook called %d times, want 1", n)
	}
	if took < 2*time.Second || took > 10*time.Second {
		t.Errorf("creation took %v; want about the webhook's timeoutSeconds (3s)", took)
	}
}

// The classic sidecar (clusters before 1.29) goes in containers, by annotation.
func TestClassicSidecarByAnnotation(t *testing.T) {
	c := need(t)
	ns := namespace(t, c, psaLabels(psaapi.LevelRestricted))
	pod := restrictedPod("app")
	pod.Annotations = map[string]string{inject.AnnotationSidecarMode: inject.ModeClassic}
	p := createPod(t, c, ns, pod)
	if !slices.ContainsFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == cfg.ContainerName }) {
		t.Fatalf("no classic sidecar in containers %v (init containers %v)", names(p.Spec.Containers), names(p.Spec.InitContainers))
	}
	if st := status(t, p); st.Mode != inject.ModeClassic {
		t.Errorf("status mode %q, want %q", st.Mode, inject.ModeClassic)
	}
	assertInjectedOnce(t, p)
}

// Reinvocation (another webhook changes the pod after triage's ran) and
// re-submitting an injected pod never inject twice.
func TestReinvocationDoesNotInjectTwice(t *testing.T) {
	c := need(t)
	ns := namespace(t, c, map[string]string{inject.LabelNamespaceInjection: "enabled"})
	m := startMutator(t, c.hook)
	// Configurations are called in name order: triage-injector, then this.
	fail := admissionregistrationv1.Fail
	never := admissionregistrationv1.NeverReinvocationPolicy
	none := admissionregistrationv1.SideEffectClassNone
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "zz-kubetest-" + ns},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "touch.kubetest.triage.dev",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			ReinvocationPolicy:      &never,
			TimeoutSeconds:          ptr(int32(3)),
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &m.url, CABundle: c.hook.caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
		}},
	}
	cx := ctx(t)
	if _, err := c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().Create(cx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(cx, mwc.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting %s: %v", mwc.Name, err)
		}
	})
	if err := c.waitForMutation(cx, ns, func(p *corev1.Pod) bool { return p.Annotations[touched] == "true" && sidecarCount(p) == 1 }); err != nil {
		t.Fatal(err)
	}

	p := createPod(t, c, ns, newPod("app"))
	if p.Annotations[touched] != "true" {
		t.Fatalf("the second webhook did not run: annotations %v", p.Annotations)
	}
	if n := c.hook.callsFor(ns + "/app"); n != 2 {
		t.Errorf("triage's webhook called %d times for the pod, want 2 (the second is the reinvocation)", n)
	}
	assertInjectedOnce(t, p)

	// An injected pod submitted again (kubectl get -o yaml | kubectl create)
	// is reviewed but left as it is.
	again := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "again", Labels: p.Labels, Annotations: p.Annotations},
		Spec:       *p.Spec.DeepCopy(),
	}
	p2 := createPod(t, c, ns, again)
	if n := c.hook.callsFor(ns + "/again"); n == 0 {
		t.Error("triage's webhook was not called for the re-submitted pod")
	}
	assertInjectedOnce(t, p2)
	if p2.Annotations[inject.AnnotationStatus] != p.Annotations[inject.AnnotationStatus] {
		t.Errorf("status annotation changed: %s, was %s", p2.Annotations[inject.AnnotationStatus], p.Annotations[inject.AnnotationStatus])
	}
}

func assertInjectedOnce(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if n := sidecarCount(p); n != 1 {
		t.Errorf("pod %s: %d sidecars, want 1", p.Name, n)
	}
	vols := 0
	for _, v := range p.Spec.Volumes {
		if v.Name == cfg.VolumeName {
			vols++
		}
	}
	if vols != 1 {
		t.Errorf("pod %s: %d %s volumes, want 1", p.Name, vols, cfg.VolumeName)
	}
	for _, ctr := range p.Spec.Containers {
		if ctr.Name == cfg.ContainerName {
			continue // the classic sidecar
		}
		env, mounts := 0, 0
		for _, e := range ctr.Env {
			if e.Name == inject.AgentSocketEnv {
				env++
			}
		}
		for _, vm := range ctr.VolumeMounts {
			if vm.Name == cfg.VolumeName {
				mounts++
			}
		}
		if env != 1 || mounts != 1 {
			t.Errorf("pod %s container %s: %d %s env vars and %d socket mounts, want 1 and 1", p.Name, ctr.Name, env, inject.AgentSocketEnv, mounts)
		}
	}
}
