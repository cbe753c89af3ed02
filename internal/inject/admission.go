package inject

import (
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// Review answers a mutating AdmissionRequest for a pod in the namespace whose
// labels are nsLabels. It always allows: with failurePolicy Ignore a broken
// injector must never stop a pod, so a request it cannot use is allowed
// unchanged with a warning. The response carries the JSONPatch when the pod
// is injected and the warnings Mutate gave.
func Review(req *admissionv1.AdmissionRequest, nsLabels map[string]string, cfg Config) (*admissionv1.AdmissionResponse, *Result) {
	var pod *corev1.Pod
	if IsPodCreate(req) {
		pod = &corev1.Pod{}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, pod); err != nil {
			return &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true,
				Warnings: []string{fmt.Sprintf("triage: cannot decode the pod (%v); not injected", err)}}, nil
		}
	}
	return ReviewPod(req, pod, nsLabels, cfg)
}

// IsPodCreate reports whether req is a pod CREATE, the only request the
// injector changes.
func IsPodCreate(req *admissionv1.AdmissionRequest) bool {
	return req != nil && req.Resource == podResource && req.SubResource == "" && req.Operation == admissionv1.Create
}

// ReviewPod is Review for a request whose object the caller has already
// decoded into pod (the webhook decodes the AdmissionReview and the pod in
// one pass); req.Object is not read. pod is mutated in place.
func ReviewPod(req *admissionv1.AdmissionRequest, pod *corev1.Pod, nsLabels map[string]string, cfg Config) (*admissionv1.AdmissionResponse, *Result) {
	resp := &admissionv1.AdmissionResponse{Allowed: true}
	if req == nil {
		resp.Warnings = []string{"triage: empty admission request; not injected"}
		return resp, nil
	}
	resp.UID = req.UID
	if !IsPodCreate(req) {
		return resp, nil
	}
	if pod == nil {
		resp.Warnings = []string{"triage: the admission request has no pod object; not injected"}
		return resp, nil
	}
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	res, err := Mutate(pod, Namespace{Name: ns, Labels: nsLabels}, cfg)
	if err != nil {
		resp.Warnings = []string{fmt.Sprintf("triage: %v; not injected", err)}
		return resp, nil
	}
	resp.Warnings = res.Warnings
	if res.Patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = res.Patch, &pt
	}
	return resp, res
}

// ReviewAdmission answers a whole AdmissionReview v1 (the webhook's request
// body) with an AdmissionReview carrying the response.
func ReviewAdmission(review *admissionv1.AdmissionReview, nsLabels map[string]string, cfg Config) *admissionv1.AdmissionReview {
	resp, _ := Review(review.Request, nsLabels, cfg)
	return &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	}
}
