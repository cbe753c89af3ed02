package injector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"

	"github.com/triage-sh/triage/internal/inject"
)

// TestInjects posts real AdmissionReview v1 requests over TLS and checks the
// answer without golden files: the patch applies, the sidecar and the agent
// socket are there, the status annotation says what was done, and the pod is
// admissible at its namespace's Pod Security level.
func TestInjects(t *testing.T) {
	ts := startServer(t, serverOpts{})
	for _, tc := range []struct {
		name    string
		level   psaapi.Level
		capture bool
		native  bool
	}{
		{"deployment_plain", psaapi.LevelPrivileged, false, true},
		{"run_as_user", psaapi.LevelRestricted, false, true},
		{"capture_baseline", psaapi.LevelBaseline, false, true},
		{"capture_privileged", psaapi.LevelPrivileged, true, true},
		{"capture_restricted", psaapi.LevelRestricted, false, true},
		{"classic_mode", psaapi.LevelBaseline, false, false},
		{"resource_overrides", psaapi.LevelPrivileged, false, true},
		{"invalid_annotations", psaapi.LevelPrivileged, false, true},
		{"share_process_namespace", psaapi.LevelPrivileged, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := readRequest(t, tc.name)
			resp := ts.review(t, req)
			if string(resp.UID) != uidOf(t, req) {
				t.Errorf("uid %q, want the request's %q", resp.UID, uidOf(t, req))
			}
			if resp.Patch == nil {
				t.Fatalf("no patch; warnings %q", resp.Warnings)
			}
			in, out := applyPatch(t, req, resp)
			sc := sidecar(out)
			if sc == nil {
				t.Fatalf("no sidecar container after the patch")
			}
			if tc.native {
				if len(out.Spec.InitContainers) != len(in.Spec.InitContainers)+1 || sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways || sc.StartupProbe == nil {
					t.Errorf("not a native sidecar: %+v", sc)
				}
			} else if len(out.Spec.Containers) != len(in.Spec.Containers)+1 {
				t.Errorf("classic mode: %d containers, want %d", len(out.Spec.Containers), len(in.Spec.Containers)+1)
			}
			if hasNetRaw(sc) != tc.capture {
				t.Errorf("NET_RAW added = %v, want %v", hasNetRaw(sc), tc.capture)
			}
			if tc.name == "capture_baseline" || tc.name == "capture_restricted" {
				if !warningsContain(resp.Warnings, "capture profile withheld") {
					t.Errorf("capture withheld without a warning: %q", resp.Warnings)
				}
			}
			var st inject.Status
			if err := json.Unmarshal([]byte(out.Annotations[inject.AnnotationStatus]), &st); err != nil {
				t.Fatalf("status annotation: %v", err)
			}
			if st.Capture != tc.capture || st.Container != sc.Name || st.Version != "v0.1.0-test" {
				t.Errorf("status %+v", st)
			}
			for _, c := range out.Spec.Containers {
				if c.Name == sc.Name {
					continue
				}
				found := false
				for _, e := range c.Env {
					found = found || (e.Name == inject.AgentSocketEnv && e.Value != "")
				}
				if !found {
					t.Errorf("app container %s has no %s", c.Name, inject.AgentSocketEnv)
				}
			}
			lv := psaapi.LevelVersion{Level: tc.level, Version: psaapi.LatestVersion()}
			if why := inject.Admissible(out, lv); why != "" && inject.Admissible(in, lv) == "" {
				t.Errorf("the injected pod is not admissible at %s: %s", lv, why)
			}
			// Reinvocation (reinvocationPolicy: IfNeeded) changes nothing.
			again := reviewOf(t, req, out)
			if r2 := ts.review(t, again); r2.Patch != nil {
				t.Errorf("reinvocation patched again: %s", r2.Patch)
			}
		})
	}
}

// reviewOf is request with its object replaced by pod.
func reviewOf(t *testing.T, request []byte, pod *corev1.Pod) []byte {
	t.Helper()
	var generic map[string]any
	if err := json.Unmarshal(request, &generic); err != nil {
		t.Fatal(err)
	}
	generic["request"].(map[string]any)["object"] = pod
	b, err := json.Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLeavesAlone: pods that opt out, hostNetwork pods, system namespaces
// and injected pods are allowed unchanged.
func TestLeavesAlone(t *testing.T) {
	ts := startServer(t, serverOpts{})
	for _, name := range []string{"pod_opt_out", "host_network", "kube_system", "already_injected"} {
		t.Run(name, func(t *testing.T) {
			req := readRequest(t, name)
			resp := ts.review(t, req)
			if resp.Patch != nil || resp.PatchType != nil {
				t.Errorf("patched: %s", resp.Patch)
			}
			if string(resp.UID) != uidOf(t, req) {
				t.Errorf("uid %q", resp.UID)
			}
		})
	}
}

// TestNotPodCreate: an UPDATE, or another resource, is allowed unchanged
// without a namespace lookup.
func TestNotPodCreate(t *testing.T) {
	ts := startServer(t, serverOpts{ns: StaticNamespaces{}})
	req := strings.Replace(string(readRequest(t, "deployment_plain")), `"operation": "CREATE"`, `"operation": "UPDATE"`, 1)
	if resp := ts.review(t, []byte(req)); resp.Patch != nil || len(resp.Warnings) != 0 {
		t.Errorf("UPDATE: patch %s warnings %q", resp.Patch, resp.Warnings)
	}
	// An object of another resource that does not decode as a Pod is not
	// the injector's business: allowed, no warning, its UID kept.
	other := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-9","resource":{"group":"apps","version":"v1","resource":"deployments"},"operation":"CREATE","namespace":"shop","object":{"spec":{"containers":5}}}}`
	if resp := ts.review(t, []byte(other)); resp.Patch != nil || len(resp.Warnings) != 0 || resp.UID != "u-9" {
		t.Errorf("deployment: uid %q patch %s warnings %q", resp.UID, resp.Patch, resp.Warnings)
	}
}

// TestBadInput: bodies that are not usable AdmissionReviews are answered
// allowed with a warning (failurePolicy Ignore semantics), and the server
// keeps serving.
func TestBadInput(t *testing.T) {
	ts := startServer(t, serverOpts{})
	good := readRequest(t, "deployment_plain")
	uid := uidOf(t, good)
	for _, tc := range []struct {
		name, body, uid string
	}{
		{"garbage", "\x00\x01garbage{{{", ""},
		{"empty", "", ""},
		{"json array", "[1,2,3]", ""},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, ""},
		{"v1beta1", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u-1"}}`, "u-1"},
		{"wrong kind", `{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"u-2"}}`, "u-2"},
		{"bad object", strings.Replace(string(good), `"containers": [`, `"containers": 7, "x": [`, 1), uid},
		{"object not an object", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-3","resource":{"version":"v1","resource":"pods"},"operation":"CREATE","namespace":"shop","object":"nope"}}`, "u-3"},
		{"wrong field type", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-4","operation":42}}`, "u-4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := ts.post(t, "application/json", strings.NewReader(tc.body))
			resp := decodeAnswer(t, code, b)
			if resp.Patch != nil {
				t.Errorf("patched bad input")
			}
			if len(resp.Warnings) == 0 || !strings.HasPrefix(resp.Warnings[0], "triage: ") {
				t.Errorf("warnings %q, want one from triage", resp.Warnings)
			}
			if string(resp.UID) != tc.uid {
				t.Errorf("uid %q, want %q", resp.UID, tc.uid)
			}
			if r := ts.review(t, good); r.Patch == nil {
				t.Fatalf("the server stopped injecting after bad input")
			}
		})
	}

	t.Run("content type", func(t *testing.T) {
		if code, _ := ts.post(t, "text/plain", bytes.NewReader(good)); code != http.StatusUnsupportedMediaType {
			t.Errorf("text/plain: status %d, want 415", code)
		}
		code, b := ts.post(t, "application/json; charset=utf-8", bytes.NewReader(good))
		if resp := decodeAnswer(t, code, b); resp.Patch == nil {
			t.Errorf("application/json with charset: not injected")
		}
	})
	t.Run("method", func(t *testing.T) {
		resp, err := ts.client.Get(ts.url + PathMutate)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET: status %d, want 405", resp.StatusCode)
		}
	})
}

// TestOversized: a body over the limit is refused with 413, whether its
// length is announced or not, and the server keeps serving.
func TestOversized(t *testing.T) {
	const limit = 64 << 10
	ts := startServer(t, serverOpts{maxBytes: limit})
	good := readRequest(t, "deployment_plain")
	big := bytes.Repeat([]byte(" "), limit+1)
	copy(big, `{"apiVersion":"admission.k8s.io/v1",`)

	code, b := ts.post(t, "application/json", bytes.NewReader(big))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("announced length: status %d, want 413: %s", code, b)
	}
	// Unknown length (chunked / HTTP/2 without content-length): the limit
	// is hit while reading.
	code, b = ts.post(t, "application/json", io.MultiReader(bytes.NewReader(big), strings.NewReader("}")))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("unannounced length: status %d, want 413: %s", code, b)
	}
	if r := ts.review(t, good); r.Patch == nil {
		t.Fatalf("the server stopped injecting after an oversized body")
	}
	// Exactly at the limit is fine (answered allowed, not injected: it is
	// padding, not a pod).
	atLimit := append(bytes.Repeat([]byte(" "), limit-len(good)), good...)
	if r := ts.review(t, atLimit); r.Patch == nil {
		t.Errorf("a review of exactly the limit was not injected")
	}
}

// TestConcurrent: 50 reviews at once, of several kinds, all answered
// correctly (run with -race).
func TestConcurrent(t *testing.T) {
	ts := startServer(t, serverOpts{})
	names := []string{"deployment_plain", "run_as_user", "capture_privileged", "capture_baseline", "pod_opt_out"}
	bodies := map[string][]byte{}
	for _, n := range names {
		bodies[n] = readRequest(t, n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		name := names[i%len(names)]
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, ts.url+PathMutate, bytes.NewReader(bodies[name]))
			if err != nil {
				errs <- err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := ts.client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var out struct {
				Response struct {
					UID     string `json:"uid"`
					Allowed bool   `json:"allowed"`
					Patch   []byte `json:"patch"`
				} `json:"response"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				errs <- fmt.Errorf("%s: %v", name, err)
				return
			}
			wantPatch := name != "pod_opt_out"
			if !out.Response.Allowed || out.Response.UID != uidOf(t, bodies[name]) || (out.Response.Patch != nil) != wantPatch {
				errs <- fmt.Errorf("%s: allowed %v uid %q patched %v", name, out.Response.Allowed, out.Response.UID, out.Response.Patch != nil)
				return
			}
			if name == "capture_privileged" && !bytes.Contains(out.Response.Patch, []byte("NET_RAW")) {
				errs <- fmt.Errorf("%s: no NET_RAW", name)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHealth: /healthz and /readyz answer, /readyz fails once not ready.
func TestHealth(t *testing.T) {
	ts := startServer(t, serverOpts{})
	get := func(path string) int {
		resp, err := ts.client.Get(ts.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(PathHealthz); c != 200 {
		t.Errorf("healthz %d", c)
	}
	if c := get(PathReadyz); c != 200 {
		t.Errorf("readyz %d", c)
	}
	ts.handler.SetReady(false)
	if c := get(PathReadyz); c != http.StatusServiceUnavailable {
		t.Errorf("readyz when not ready: %d", c)
	}
	if c := get(PathHealthz); c != 200 {
		t.Errorf("healthz when not ready: %d", c)
	}
}
