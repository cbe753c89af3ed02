package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// clientsetAPI is a ReviewAPI over a client-go clientset (the fake one in
// tests). Specs and statuses cross it as JSON, so the hand-written wire
// types are checked against k8s.io/api's on every call.
type clientsetAPI struct{ cs kubernetes.Interface }

func convert[T any](t testing.TB, in any) T {
	t.Helper()
	out, err := recode[T](in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// recode marshals in and decodes it strictly as a T.
func recode[T any](in any) (T, error) {
	var out T
	b, err := json.Marshal(in)
	if err != nil {
		return out, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return out, fmt.Errorf("wire type %T does not decode as %T: %w", in, out, err)
	}
	return out, nil
}

func (c clientsetAPI) CreateTokenReview(ctx context.Context, spec TokenReviewSpec) (TokenReviewStatus, error) {
	in, err := recode[authenticationv1.TokenReviewSpec](spec)
	if err != nil {
		return TokenReviewStatus{}, err
	}
	tr, err := c.cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: in}, metav1.CreateOptions{})
	if err != nil {
		return TokenReviewStatus{}, asStatusError(err)
	}
	return recode[TokenReviewStatus](tr.Status)
}

func (c clientsetAPI) CreateSubjectAccessReview(ctx context.Context, spec SubjectAccessReviewSpec) (SubjectAccessReviewStatus, error) {
	in, err := recode[authorizationv1.SubjectAccessReviewSpec](spec)
	if err != nil {
		return SubjectAccessReviewStatus{}, err
	}
	sar, err := c.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: in}, metav1.CreateOptions{})
	if err != nil {
		return SubjectAccessReviewStatus{}, asStatusError(err)
	}
	return recode[SubjectAccessReviewStatus](sar.Status)
}

func asStatusError(err error) error {
	if se, ok := err.(apierrors.APIStatus); ok {
		return &APIStatusError{Code: int(se.Status().Code), Message: se.Status().Message}
	}
	return err
}

// TestWireTypesMatchKubernetes: every field of the hand-written wire types
// survives a round trip through k8s.io/api's types.
func TestWireTypesMatchKubernetes(t *testing.T) {
	trs := TokenReviewStatus{Authenticated: true, Audiences: []string{"a"}, Error: "e",
		User: UserInfo{Username: "u", UID: "id", Groups: []string{"g"}, Extra: map[string][]string{"k": {"v"}}}}
	if got := convert[TokenReviewStatus](t, convert[authenticationv1.TokenReviewStatus](t, trs)); !reflect.DeepEqual(got, trs) {
		t.Errorf("TokenReviewStatus round trip: %+v", got)
	}
	sars := SubjectAccessReviewSpec{User: "u", UID: "id", Groups: []string{"g"}, Extra: map[string][]string{"k": {"v"}},
		ResourceAttributes: &ResourceAttributes{Namespace: "n", Verb: "get", Group: KubeAPIGroup, Version: "v", Resource: "pods", Subresource: "view", Name: "p"}}
	if got := convert[SubjectAccessReviewSpec](t, convert[authorizationv1.SubjectAccessReviewSpec](t, sars)); !reflect.DeepEqual(got, sars) {
		t.Errorf("SubjectAccessReviewSpec round trip: %+v", got)
	}
	st := SubjectAccessReviewStatus{Allowed: true, Denied: true, Reason: "r", EvaluationError: "x"}
	if got := convert[SubjectAccessReviewStatus](t, convert[authorizationv1.SubjectAccessReviewStatus](t, st)); !reflect.DeepEqual(got, st) {
		t.Errorf("SubjectAccessReviewStatus round trip: %+v", got)
	}
}

// TestReviewHTTP: the HTTP client posts the documents the API server
// expects, with the sidecar's token re-read from its file, and maps
// refusals to APIStatusError (and the reviewer's hint).
func TestReviewHTTP(t *testing.T) {
	var gotAuth, gotPath []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		gotPath = append(gotPath, r.URL.Path)
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		spec, _ := body["spec"].(map[string]any)
		switch {
		case r.URL.Path == "/apis/authentication.k8s.io/v1/tokenreviews" && body["kind"] == "TokenReview" && spec["token"] == "good":
			_, _ = w.Write([]byte(`{"kind":"TokenReview","status":{"authenticated":true,"audiences":["triage.dev"],"user":{"username":"system:serviceaccount:triage-system:triage-viewer","groups":["system:serviceaccounts"]}}}`))
		case r.URL.Path == "/apis/authorization.k8s.io/v1/subjectaccessreviews" && body["kind"] == "SubjectAccessReview":
			attrs, _ := spec["resourceAttributes"].(map[string]any)
			_, _ = w.Write([]byte(`{"status":{"allowed":` + map[bool]string{true: "true", false: "false"}[attrs["subresource"] == "view"] + `}}`))
		default:
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"kind":"Status","message":"tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:shop:default\" cannot create resource"}`))
		}
	}))
	defer srv.Close()
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("sidecar-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api, err := NewReviewHTTP(ReviewHTTPConfig{APIServer: srv.URL, TokenFile: tokFile, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewKubeReviewer(ReviewConfig{Client: api, Namespace: "shop", PodName: "web-0"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Authenticate(t.Context(), "good")
	if err != nil || id.ServiceAccount != "triage-viewer" || id.Namespace != "triage-system" {
		t.Fatalf("Authenticate: %+v, %v", id, err)
	}
	if ok, _, err := r.Authorize(t.Context(), id, 1); !ok || err != nil { // PERMISSION_VIEW
		t.Errorf("view: %v %v", ok, err)
	}
	if ok, reason, err := r.Authorize(t.Context(), id, 2); ok || err != nil || !strings.Contains(reason, "pods/profile") {
		t.Errorf("profile: %v %q %v", ok, reason, err)
	}
	if err := os.WriteFile(tokFile, []byte("sidecar-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = r.Authenticate(t.Context(), "other")
	if err == nil || !strings.Contains(err.Error(), "system:auth-delegator") || !strings.Contains(err.Error(), "HTTP 403") {
		t.Errorf("forbidden: %v", err)
	}
	if gotAuth[0] != "Bearer sidecar-1" || gotAuth[len(gotAuth)-1] != "Bearer sidecar-2" {
		t.Errorf("the sidecar's token is not re-read per call: %q", gotAuth)
	}
	if _, err := NewReviewHTTP(ReviewHTTPConfig{APIServer: "http://10.0.0.1"}); err == nil {
		t.Error("plain http to a remote API server accepted")
	}
}
