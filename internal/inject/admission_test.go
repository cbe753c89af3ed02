package inject

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	kjson "sigs.k8s.io/json"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testConfig() Config {
	c := DefaultConfig()
	c.Version = "v0.1.0"
	c.Image = "ghcr.io/triage-sh/triage-sidecar:v0.1.0"
	return c
}

var (
	nsEnabled    = map[string]string{LabelNamespaceInjection: "enabled"}
	nsBaseline   = map[string]string{LabelNamespaceInjection: "enabled", psaapi.EnforceLevelLabel: "baseline", psaapi.WarnLevelLabel: "restricted"}
	nsPrivileged = map[string]string{LabelNamespaceInjection: "enabled", psaapi.EnforceLevelLabel: "privileged"}
	nsRestricted = map[string]string{LabelNamespaceInjection: "enabled", psaapi.EnforceLevelLabel: "restricted", psaapi.EnforceVersionLabel: "latest"}
)

// goldenCase is one AdmissionReview in testdata/admission.
var goldenCases = []struct {
	name     string
	nsLabels map[string]string
	injected bool
	capture  bool
}{
	{"deployment_plain", nsEnabled, true, false},
	{"run_as_user", nsRestricted, true, false},
	{"host_network", nsEnabled, false, false},
	{"already_injected", nsEnabled, false, false},
	{"capture_baseline", nsBaseline, true, false},
	{"capture_privileged", nsPrivileged, true, true},
	{"capture_restricted", nsRestricted, true, false},
	{"classic_mode", nsBaseline, true, false},
	{"resource_overrides", nsEnabled, true, false},
	{"invalid_annotations", nsEnabled, true, false},
	{"share_process_namespace", nil, true, false},
	{"pod_opt_out", nsEnabled, false, false},
	{"kube_system", nsEnabled, false, false},
}

type golden struct {
	Allowed  bool            `json:"allowed"`
	Warnings []string        `json:"warnings"`
	Patch    json.RawMessage `json:"patch"`
}

func readReview(t testing.TB, name string) *admissionv1.AdmissionReview {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "admission", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", path, got)
	}
}

func decodePod(t *testing.T, b []byte) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestAdmissionGolden(t *testing.T) {
	cfg := testConfig()
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			review := readReview(t, tc.name)
			out := ReviewAdmission(review, tc.nsLabels, cfg)
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
				t.Errorf("response review is %s %s", out.APIVersion, out.Kind)
			}
			resp := out.Response
			if resp.UID != review.Request.UID || !resp.Allowed {
				t.Fatalf("uid %q allowed %v; want the request's uid and allowed", resp.UID, resp.Allowed)
			}
			if (resp.Patch != nil) != tc.injected {
				t.Fatalf("patched = %v, want %v", resp.Patch != nil, tc.injected)
			}
			if resp.Patch != nil && (resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch) {
				t.Errorf("patchType = %v, want JSONPatch", resp.PatchType)
			}

			g := golden{Allowed: resp.Allowed, Warnings: resp.Warnings, Patch: json.RawMessage("null")}
			if resp.Patch != nil {
				g.Patch = resp.Patch
			}
			gb, err := json.MarshalIndent(g, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "admission", tc.name+".golden.json"), append(gb, '\n'))

			raw := review.Request.Object.Raw
			input := decodePod(t, raw)
			_, res := Review(review.Request, tc.nsLabels, cfg)
			if !tc.injected {
				if res.Injected || !reflect.DeepEqual(res.Pod, input) {
					t.Errorf("not injected, yet the pod changed")
				}
				return
			}
			checkPatchMatchesDiff(t, input, res.Pod, res.Patch)
			// The patch, applied strictly (RFC 6902) to the object exactly as
			// the API server sent it, gives Mutate's pod.
			patched, err := ApplyPatch(raw, resp.Patch, false)
			if err != nil {
				t.Fatalf("applying the patch: %v", err)
			}
			got := decodePod(t, patched)
			if !reflect.DeepEqual(mustJSON(t, got), mustJSON(t, res.Pod)) {
				t.Errorf("patched pod differs from Mutate's pod:\n%s\n%s", mustJSON(t, got), mustJSON(t, res.Pod))
			}
			if res.Status.Capture != tc.capture {
				t.Errorf("capture = %v, want %v", res.Status.Capture, tc.capture)
			}
			checkStatusAnnotation(t, got, res.Status)
			checkAdmissible(t, input, got, tc.nsLabels, res.Status.Capture)
			checkSidecar(t, got, cfg)

			// Reinvocation: the patched pod comes back; nothing more happens.
			review2 := readReview(t, tc.name)
			review2.Request.Object.Raw = patched
			resp2, res2 := Review(review2.Request, tc.nsLabels, cfg)
			if resp2.Patch != nil || res2.Injected || res2.Decision.Reason != ReasonAlreadyInjected {
				t.Errorf("reinvocation patched again: %s (%s)", resp2.Patch, res2.Decision.Reason)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkStatusAnnotation(t *testing.T, pod *corev1.Pod, want Status) {
	t.Helper()
	var st Status
	if err := json.Unmarshal([]byte(pod.Annotations[AnnotationStatus]), &st); err != nil {
		t.Fatalf("status annotation: %v", err)
	}
	if st != want {
		t.Errorf("status annotation %+v, want %+v", st, want)
	}
	if st.Version != "v0.1.0" || st.Reason == "" || st.PodSecurity == "" {
		t.Errorf("status annotation incomplete: %+v", st)
	}
}

// checkAdmissible proves the injector never makes a pod inadmissible: the
// mutated pod passes the namespace's enforce level whenever the input did,
// and restricted whenever the input did and capture was not granted.
func checkAdmissible(t *testing.T, input, mutated *corev1.Pod, nsLabels map[string]string, capture bool) {
	t.Helper()
	policy, _ := psaapi.PolicyToEvaluate(nsLabels, DefaultConfig().PodSecurityDefaults) // invalid labels: restricted, as PodSecurity admission does
	levels := []psaapi.LevelVersion{policy.Enforce}
	restricted := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	if Admissible(input, restricted) == "" && !capture {
		levels = append(levels, restricted)
	}
	for _, lv := range levels {
		if Admissible(input, lv) != "" {
			continue
		}
		if why := Admissible(mutated, lv); why != "" {
			t.Errorf("the injected pod is not admissible at %s: %s", lv.String(), why)
		}
	}
}

// checkSidecar checks the invariants of every injected sidecar.
func checkSidecar(t *testing.T, pod *corev1.Pod, cfg Config) {
	t.Helper()
	var sc *corev1.Container
	native := false
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == cfg.ContainerName {
			sc, native = &pod.Spec.InitContainers[i], true
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == cfg.ContainerName {
			if sc != nil {
				t.Fatal("two sidecars")
			}
			sc = &pod.Spec.Containers[i]
		}
	}
	if sc == nil {
		t.Fatal("no sidecar")
	}
	if native != (sc.RestartPolicy != nil && *sc.RestartPolicy == corev1.ContainerRestartPolicyAlways) {
		t.Errorf("native sidecar restartPolicy %v", sc.RestartPolicy)
	}
	if sc.StartupProbe == nil || sc.StartupProbe.Exec == nil {
		t.Errorf("no exec startup probe")
	}
	s := sc.SecurityContext
	if s == nil || s.RunAsNonRoot == nil || !*s.RunAsNonRoot || s.RunAsUser == nil || *s.RunAsUser == 0 ||
		s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem || s.SeccompProfile == nil ||
		s.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || s.Capabilities == nil ||
		!reflect.DeepEqual(s.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("sidecar securityContext %+v", s)
	}
	wantArg := "--agent-socket=" + cfg.SocketPath()
	if len(sc.Args) == 0 || sc.Args[len(sc.Args)-1] != wantArg {
		t.Errorf("sidecar args %q, want %q last", sc.Args, wantArg)
	}
	for _, c := range append([]corev1.Container{*sc}, pod.Spec.Containers...) {
		found := false
		for _, m := range c.VolumeMounts {
			found = found || (m.Name == cfg.VolumeName && m.MountPath == cfg.SocketDir)
		}
		if !found {
			t.Errorf("container %s does not mount the socket volume", c.Name)
		}
		if c.Name == cfg.ContainerName {
			continue
		}
		env := ""
		for _, e := range c.Env {
			if e.Name == AgentSocketEnv {
				env = e.Value
			}
		}
		if env != cfg.SocketPath() {
			t.Errorf("container %s: %s=%q", c.Name, AgentSocketEnv, env)
		}
	}
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == cfg.VolumeName {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.EmptyDir == nil || vol.EmptyDir.Medium != corev1.StorageMediumMemory || vol.EmptyDir.SizeLimit == nil {
		t.Errorf("socket volume %+v", vol)
	}
	if cfg.KubeAuth != "" {
		checkKubeAuth(t, pod, sc, cfg)
	}
	if pod.Annotations[AnnotationDefaultContainer] == "" || pod.Annotations[AnnotationDefaultContainer] == cfg.ContainerName {
		t.Errorf("default-container annotation %q", pod.Annotations[AnnotationDefaultContainer])
	}
}

// checkKubeAuth: a sidecar injected for Kubernetes identities listens on
// loopback in plaintext with --kube-auth, reads its own projected token
// and the cluster CA from a read-only mount no app container has, and
// knows its pod from the downward API.
func checkKubeAuth(t *testing.T, pod *corev1.Pod, sc *corev1.Container, cfg Config) {
	t.Helper()
	for _, want := range []string{"--kube-auth=" + cfg.KubeAuth, "--insecure-local", "--addr=127.0.0.1:7070",
		"--kube-token-file=" + cfg.KubeAPIDir + "/token", "--kube-ca-file=" + cfg.KubeAPIDir + "/ca.crt"} {
		if !slices.Contains(sc.Args, want) {
			t.Errorf("sidecar args %q lack %s", sc.Args, want)
		}
	}
	if len(sc.Ports) != 1 || sc.Ports[0].Name != "triage" || sc.Ports[0].ContainerPort != cfg.Port {
		t.Errorf("sidecar ports %+v", sc.Ports)
	}
	env := map[string]string{}
	for _, e := range sc.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["TRIAGE_POD_NAME"] != "metadata.name" || env["TRIAGE_POD_NAMESPACE"] != "metadata.namespace" {
		t.Errorf("sidecar downward-API env %v", env)
	}
	mounted := func(c corev1.Container) bool {
		return slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == cfg.KubeAPIVolumeName })
	}
	if !slices.ContainsFunc(sc.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == cfg.KubeAPIVolumeName && m.MountPath == cfg.KubeAPIDir && m.ReadOnly
	}) {
		t.Errorf("sidecar mounts %+v: no read-only %s at %s", sc.VolumeMounts, cfg.KubeAPIVolumeName, cfg.KubeAPIDir)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name != cfg.ContainerName && mounted(c) {
			t.Errorf("app container %s mounts the sidecar's API token", c.Name)
		}
	}
	i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == cfg.KubeAPIVolumeName })
	if i < 0 || pod.Spec.Volumes[i].Projected == nil || len(pod.Spec.Volumes[i].Projected.Sources) != 2 ||
		pod.Spec.Volumes[i].Projected.Sources[0].ServiceAccountToken == nil ||
		pod.Spec.Volumes[i].Projected.Sources[0].ServiceAccountToken.Audience != "" {
		t.Errorf("API volume: want a projected ServiceAccount token for the API server's audience and the CA")
	}
}

func TestReviewEdgeCases(t *testing.T) {
	cfg := testConfig()
	raw := readReview(t, "deployment_plain").Request
	tests := []struct {
		name    string
		mut     func(r *admissionv1.AdmissionRequest)
		warning string
	}{
		{"update is ignored", func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Update }, ""},
		{"other resource", func(r *admissionv1.AdmissionRequest) { r.Resource.Resource = "services" }, ""},
		{"subresource", func(r *admissionv1.AdmissionRequest) { r.SubResource = "ephemeralcontainers" }, ""},
		{"undecodable pod", func(r *admissionv1.AdmissionRequest) { r.Object.Raw = []byte(`{"spec":{"containers":7}}`) }, "cannot decode"},
		{"empty object", func(r *admissionv1.AdmissionRequest) { r.Object.Raw = nil }, "cannot decode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := raw.DeepCopy()
			tc.mut(req)
			resp, _ := Review(req, nsEnabled, cfg)
			if !resp.Allowed || resp.Patch != nil || resp.UID != req.UID {
				t.Errorf("response %+v", resp)
			}
			if (tc.warning == "") != (len(resp.Warnings) == 0) || (tc.warning != "" && !strings.Contains(resp.Warnings[0], tc.warning)) {
				t.Errorf("warnings %q, want %q", resp.Warnings, tc.warning)
			}
		})
	}
	t.Run("nil request", func(t *testing.T) {
		out := ReviewAdmission(&admissionv1.AdmissionReview{}, nsEnabled, cfg)
		if !out.Response.Allowed || len(out.Response.Warnings) != 1 {
			t.Errorf("%+v", out.Response)
		}
	})
	t.Run("invalid config never denies", func(t *testing.T) {
		bad := cfg
		bad.Image = ""
		resp, _ := Review(raw.DeepCopy(), nsEnabled, bad)
		if !resp.Allowed || resp.Patch != nil || len(resp.Warnings) != 1 {
			t.Errorf("%+v", resp)
		}
	})
	t.Run("namespace from the pod when the request has none", func(t *testing.T) {
		req := raw.DeepCopy()
		req.Namespace = ""
		_, res := Review(req, nsEnabled, cfg)
		if !res.Injected {
			t.Errorf("not injected: %s", res.Decision.Reason)
		}
		req.Object.Raw = bytes.Replace(req.Object.Raw, []byte(`"namespace": "shop"`), []byte(`"namespace": "kube-system"`), 1)
		if _, res := Review(req, nsEnabled, cfg); res.Injected {
			t.Error("kube-system pod injected")
		}
	})
}

// FuzzReview feeds arbitrary pod JSON to Review: it must never deny or
// panic, and any patch it returns must turn the pod into Mutate's pod.
func FuzzReview(f *testing.F) {
	for _, tc := range goldenCases {
		f.Add(readReview(f, tc.name).Request.Object.Raw, true)
	}
	f.Add([]byte(`{"metadata":{"annotations":null},"spec":{"containers":[{"name":"a","env":null}]}}`), false)
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, raw []byte, capture bool) {
		req := &admissionv1.AdmissionRequest{
			UID: "u", Namespace: "shop", Operation: admissionv1.Create,
			Resource: podResource,
		}
		req.Object.Raw = raw
		labels := nsEnabled
		if capture {
			labels = nsPrivileged
		}
		resp, res := Review(req, labels, cfg)
		if !resp.Allowed || resp.UID != "u" {
			t.Fatalf("denied: %+v", resp)
		}
		if resp.Patch == nil {
			return
		}
		var in corev1.Pod
		// The input as the API server would have encoded it.
		if err := kjsonUnmarshal(raw, &in); err != nil {
			t.Fatalf("Review patched a pod it could not decode: %v", err)
		}
		checkPatchMatchesDiff(t, &in, res.Pod, resp.Patch)
		patched, err := ApplyPatch([]byte(mustJSON(t, &in)), resp.Patch, false)
		if err != nil {
			t.Fatalf("patch does not apply: %v\n%s", err, resp.Patch)
		}
		if got, want := mustJSON(t, decodePod(t, patched)), mustJSON(t, res.Pod); got != want {
			t.Fatalf("patched pod differs:\n%s\n%s", got, want)
		}
		checkAdmissible(t, &in, res.Pod, labels, res.Status.Capture)
	})
}

func kjsonUnmarshal(b []byte, v any) error { return kjson.UnmarshalCaseSensitivePreserveInts(b, v) }
