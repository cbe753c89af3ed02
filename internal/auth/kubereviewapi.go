package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// The review API's wire types: the fields of authentication.k8s.io/v1
// TokenReview and authorization.k8s.io/v1 SubjectAccessReview that triage
// sends and reads, with their JSON names. They are written out here rather
// than imported from k8s.io/api because linking those packages (and
// apimachinery's scheme beneath them) costs every sidecar ~8 MiB of RSS and
// ~10 MB of binary for two small JSON documents. A test decodes them into
// the k8s.io/api types to keep the names honest.
type (
	// TokenReviewSpec is a TokenReview's spec.
	TokenReviewSpec struct {
		Token     string   `json:"token"`
		Audiences []string `json:"audiences,omitempty"`
	}
	// TokenReviewStatus is a TokenReview's status.
	TokenReviewStatus struct {
		Authenticated bool     `json:"authenticated,omitempty"`
		User          UserInfo `json:"user,omitzero"`
		Audiences     []string `json:"audiences,omitempty"`
		Error         string   `json:"error,omitempty"`
	}
	// UserInfo is the user a TokenReview found.
	UserInfo struct {
		Username string              `json:"username,omitempty"`
		UID      string              `json:"uid,omitempty"`
		Groups   []string            `json:"groups,omitempty"`
		Extra    map[string][]string `json:"extra,omitempty"`
	}
	// SubjectAccessReviewSpec is a SubjectAccessReview's spec.
	SubjectAccessReviewSpec struct {
		ResourceAttributes *ResourceAttributes `json:"resourceAttributes,omitempty"`
		User               string              `json:"user,omitempty"`
		Groups             []string            `json:"groups,omitempty"`
		Extra              map[string][]string `json:"extra,omitempty"`
		UID                string              `json:"uid,omitempty"`
	}
	// ResourceAttributes are what a SubjectAccessReview asks about.
	ResourceAttributes struct {
		Namespace   string `json:"namespace,omitempty"`
		Verb        string `json:"verb,omitempty"`
		Group       string `json:"group,omitempty"`
		Version     string `json:"version,omitempty"`
		Resource    string `json:"resource,omitempty"`
		Subresource string `json:"subresource,omitempty"`
		Name        string `json:"name,omitempty"`
	}
	// SubjectAccessReviewStatus is a SubjectAccessReview's decision.
	SubjectAccessReviewStatus struct {
		Allowed         bool   `json:"allowed"`
		Denied          bool   `json:"denied,omitempty"`
		Reason          string `json:"reason,omitempty"`
		EvaluationError string `json:"evaluationError,omitempty"`
	}
)

// ReviewAPI creates reviews on the API server.
type ReviewAPI interface {
	CreateTokenReview(ctx context.Context, spec TokenReviewSpec) (TokenReviewStatus, error)
	CreateSubjectAccessReview(ctx context.Context, spec SubjectAccessReviewSpec) (SubjectAccessReviewStatus, error)
}

// APIStatusError is an API server's refusal: its HTTP status code and the
// message of the Status object it returned.
type APIStatusError struct {
	Code    int
	Message string
}

func (e *APIStatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("HTTP %d: %s", e.Code, quoteLong(e.Message))
}

// ReviewHTTPConfig configures NewReviewHTTP.
type ReviewHTTPConfig struct {
	// APIServer is the API server's URL (https unless loopback).
	APIServer string
	// CAFile is the API server's CA bundle; "" uses the system roots.
	CAFile string
	// TokenFile holds the sidecar's own token for the API server, re-read
	// on each review (the kubelet rotates it).
	TokenFile string
	// Timeout bounds one review; default 5 s.
	Timeout time.Duration
	// HTTPClient replaces the client built from CAFile (tests).
	HTTPClient *http.Client
}

// maxReviewResponse bounds a review's response body.
const maxReviewResponse = 1 << 20

type reviewHTTP struct {
	api, tokenFile string
	timeout        time.Duration
	client         *http.Client
}

// NewReviewHTTP returns a ReviewAPI that posts to the API server with the
// sidecar's token.
func NewReviewHTTP(cfg ReviewHTTPConfig) (ReviewAPI, error) {
	base, err := parseAPIServerURL(cfg.APIServer)
	if err != nil {
		return nil, fmt.Errorf("kubernetes review: %w", err)
	}
	r := &reviewHTTP{api: base.String(), tokenFile: cfg.TokenFile, timeout: cfg.Timeout, client: cfg.HTTPClient}
	if r.timeout <= 0 {
		r.timeout = 5 * time.Second
	}
	if r.client == nil {
		if r.client, err = apiServerClient(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("kubernetes review: %w", err)
		}
	}
	return r, nil
}

func (r *reviewHTTP) CreateTokenReview(ctx context.Context, spec TokenReviewSpec) (TokenReviewStatus, error) {
	var out struct {
		Status TokenReviewStatus `json:"status"`
	}
	err := r.post(ctx, "/apis/authentication.k8s.io/v1/tokenreviews", map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec,
	}, &out)
	return out.Status, err
}

func (r *reviewHTTP) CreateSubjectAccessReview(ctx context.Context, spec SubjectAccessReviewSpec) (SubjectAccessReviewStatus, error) {
	var out struct {
		Status SubjectAccessReviewStatus `json:"status"`
	}
	err := r.post(ctx, "/apis/authorization.k8s.io/v1/subjectaccessreviews", map[string]any{
		"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec,
	}, &out)
	return out.Status, err
}

// post sends body as JSON to path and decodes the answer into out.
func (r *reviewHTTP) post(ctx context.Context, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.api+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if r.tokenFile != "" {
		tok, err := os.ReadFile(r.tokenFile)
		if err != nil {
			return fmt.Errorf("read the sidecar's API token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReviewResponse+1))
	if err != nil {
		return err
	}
	if len(b) > maxReviewResponse {
		return fmt.Errorf("the API server's answer is larger than %d bytes", maxReviewResponse)
	}
	if resp.StatusCode/100 != 2 {
		var st struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(b, &st)
		return &APIStatusError{Code: resp.StatusCode, Message: st.Message}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the API server's answer is not a review: %w", err)
	}
	return nil
}

// isAuthError reports whether err is the API server refusing the sidecar
// itself (401 or 403).
func isAuthError(err error) bool {
	var se *APIStatusError
	return errors.As(err, &se) && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden)
}
