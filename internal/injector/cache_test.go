package injector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/triage-sh/triage/internal/inject"
)

// TestReviewCacheReplicas: 50 concurrent reviews of byte-identical pods (a
// ReplicaSet scaling up), each with its own UID, are computed once; each
// answer carries its request's UID and the same patch, equal to what an
// uncached server answers.
func TestReviewCacheReplicas(t *testing.T) {
	ts := startServer(t, serverOpts{})
	uncached := startServer(t, serverOpts{cache: -1})
	base := readRequest(t, "capture_privileged")
	want := uncached.review(t, base)
	uid := uidOf(t, base)

	var wg sync.WaitGroup
	for i := range 50 {
		body := bytes.Replace(base, []byte(uid), fmt.Appendf(nil, "uid-%02d", i), 1)
		wg.Go(func() {
			code, b := ts.post(t, "application/json", bytes.NewReader(body))
			var out admissionv1.AdmissionReview
			if code != 200 || json.Unmarshal(b, &out) != nil || out.Response == nil {
				t.Errorf("status %d: %s", code, b)
				return
			}
			r := out.Response
			if string(r.UID) != fmt.Sprintf("uid-%02d", i) || !r.Allowed || !bytes.Equal(r.Patch, want.Patch) || strings.Join(r.Warnings, "|") != strings.Join(want.Warnings, "|") {
				t.Errorf("review %d: uid %q allowed %v, patch or warnings differ from the uncached answer", i, r.UID, r.Allowed)
			}
		})
	}
	wg.Wait()
	if n := strings.Count(ts.logs.String(), `"cached":false`); n != 1 {
		t.Errorf("%d reviews computed, want 1", n)
	}
	if n := strings.Count(ts.logs.String(), `"cached":true`); n != 49 {
		t.Errorf("%d reviews from the cache, want 49", n)
	}
}

// TestReviewCacheEquivalence: for every testdata request, the cached answer
// equals inject.Review's.
func TestReviewCacheEquivalence(t *testing.T) {
	ts := startServer(t, serverOpts{})
	for _, name := range []string{"deployment_plain", "run_as_user", "capture_baseline", "capture_privileged", "capture_restricted", "classic_mode", "resource_overrides", "invalid_annotations", "share_process_namespace", "pod_opt_out", "host_network", "kube_system", "already_injected"} {
		body := readRequest(t, name)
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil {
			t.Fatal(err)
		}
		labels, _ := testNamespaces.NamespaceLabels(t.Context(), review.Request.Namespace)
		want, _ := inject.Review(review.Request, labels, testConfig())
		for range 2 { // computed, then cached
			got := ts.review(t, body)
			if got.UID != want.UID || !bytes.Equal(got.Patch, want.Patch) || strings.Join(got.Warnings, "|") != strings.Join(want.Warnings, "|") || (got.PatchType == nil) != (want.PatchType == nil) {
				t.Errorf("%s: answer differs from inject.Review's", name)
			}
		}
	}
}

// TestReviewCacheBounded: the cache never holds more than its size.
func TestReviewCacheBounded(t *testing.T) {
	c := newReviewCache(4)
	computed := 0
	for i := range 10 {
		req := &admissionv1.AdmissionRequest{Namespace: "ns"}
		key := reviewKey(req.Namespace, map[string]string{"a": "b"}, fmt.Appendf(nil, `{"n":%d}`, i%6), "")
		_, _, _ = c.review(req, key, func() (*admissionv1.AdmissionResponse, *inject.Result) {
			computed++
			return &admissionv1.AdmissionResponse{Allowed: true}, nil
		})
		if len(c.entries) > 4 {
			t.Fatalf("%d entries", len(c.entries))
		}
	}
	if computed < 6 || len(c.inflight) != 0 {
		t.Errorf("computed %d, inflight %d", computed, len(c.inflight))
	}
	// A different label set is a different key.
	pod := []byte(`{}`)
	if reviewKey("ns", map[string]string{"a": "b"}, pod, "") == reviewKey("ns", map[string]string{"a": "c"}, pod, "") ||
		reviewKey("ns", map[string]string{"ab": ""}, pod, "") == reviewKey("ns", map[string]string{"a": "b"}, pod, "") ||
		reviewKey("ns", nil, pod, "") == reviewKey("ns", nil, []byte(`{"a":1}`), "") {
		t.Error("keys collide")
	}
}
