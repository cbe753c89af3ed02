// Package injector is triage's mutating admission webhook server: an HTTPS
// server answering AdmissionReview v1 on /mutate with the logic of
// internal/inject, the namespace's labels read through client-go (cached),
// and a serving certificate reloaded from files when they change.
//
// The injector never blocks a pod: whatever goes wrong with a request it can
// parse as an AdmissionReview, it answers allowed (with a warning), as the
// webhook's failurePolicy: Ignore would. Only requests that are not
// admission reviews at all (wrong method or content type, oversized bodies)
// get HTTP errors, which the API server also treats as Ignore.
//
// Latency: at most GOMAXPROCS reviews are computed at once (a burst does
// not pile up 50 half-done reviews' garbage), and answers to pod CREATEs are
// remembered by the hash of the namespace, its labels and the pod's bytes,
// so the byte-identical pods of one ReplicaSet, Job or DaemonSet are
// computed once (see reviewCache).
package injector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	psaapi "k8s.io/pod-security-admission/api"
	kjson "sigs.k8s.io/json"

	"github.com/triage-sh/triage/internal/inject"
)

// Defaults of Options.
const (
	// DefaultMaxRequestBytes bounds an AdmissionReview body. The API server
	// accepts objects up to 3 MiB; a review of a CREATE carries one object.
	DefaultMaxRequestBytes = 4 << 20
	// DefaultLookupTimeout bounds the namespace lookup of one review; the
	// webhook's timeoutSeconds is 3.
	DefaultLookupTimeout = 2 * time.Second
)

// Paths served by Handler.
const (
	PathMutate  = "/mutate"
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
)

// NamespaceLabeler returns a namespace's labels.
type NamespaceLabeler interface {
	NamespaceLabels(ctx context.Context, name string) (map[string]string, error)
}

// StaticNamespaces is a NamespaceLabeler backed by a map (tests, benchmarks,
// and running without a cluster). An unknown namespace is an error.
type StaticNamespaces map[string]map[string]string

// NamespaceLabels implements NamespaceLabeler.
func (s StaticNamespaces) NamespaceLabels(_ context.Context, name string) (map[string]string, error) {
	l, ok := s[name]
	if !ok {
		return nil, fmt.Errorf("namespace %q not found", name)
	}
	return l, nil
}

// Options configure a Handler.
type Options struct {
	// Config is the injection configuration (inject.DefaultConfig when zero).
	Config inject.Config
	// Namespaces supplies the labels of the pod's namespace. Required.
	Namespaces NamespaceLabeler
	// Logger receives one JSON line per review; slog.Default when nil.
	Logger *slog.Logger
	// MaxRequestBytes bounds a request body (DefaultMaxRequestBytes when 0).
	MaxRequestBytes int64
	// LookupTimeout bounds the namespace lookup (DefaultLookupTimeout when 0).
	LookupTimeout time.Duration
	// ReviewCacheSize is how many answers to pod CREATEs are remembered by
	// the hash of the namespace, its labels and the pod's bytes
	// (DefaultReviewCacheSize when 0, none when negative).
	ReviewCacheSize int
	// Ready, when not nil, is also asked by /readyz (the built-in mode:
	// whether the serving certificate has loaded).
	Ready func() bool
}

// FallbackNamespaceLabels are assumed when the namespace's labels cannot be
// read: the namespace opted in (the webhook's selectors only send pods that
// opted in, and a pod's own triage.dev/inject=false still wins) and enforces
// the restricted Pod Security level, so the capture profile is withheld and
// the injected sidecar is admissible whatever the namespace really enforces.
var FallbackNamespaceLabels = map[string]string{
	inject.LabelNamespaceInjection: "enabled",
	psaapi.EnforceLevelLabel:       string(psaapi.LevelRestricted),
	psaapi.EnforceVersionLabel:     "latest",
}

// Handler serves /mutate, /healthz and /readyz.
type Handler struct {
	cfg     inject.Config
	ns      NamespaceLabeler
	log     *slog.Logger
	max     int64
	timeout time.Duration
	mux     *http.ServeMux
	ready   atomic.Bool
	readyFn func() bool
	slots   chan struct{}
	cache   *reviewCache
}

// NewHandler validates opts and returns a Handler that is ready.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Config.Image == "" && opts.Config.ContainerName == "" {
		opts.Config = inject.DefaultConfig()
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Namespaces == nil {
		return nil, errors.New("injector: Options.Namespaces is nil")
	}
	h := &Handler{cfg: opts.Config, ns: opts.Namespaces, log: opts.Logger, max: opts.MaxRequestBytes, timeout: opts.LookupTimeout, readyFn: opts.Ready}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.max <= 0 {
		h.max = DefaultMaxRequestBytes
	}
	if h.timeout <= 0 {
		h.timeout = DefaultLookupTimeout
	}
	// At most GOMAXPROCS reviews compute at once: the rest of a burst
	// waits with its body read, instead of interleaving half-done reviews.
	h.slots = make(chan struct{}, runtime.GOMAXPROCS(0))
	switch {
	case opts.ReviewCacheSize == 0:
		h.cache = newReviewCache(DefaultReviewCacheSize)
	case opts.ReviewCacheSize > 0:
		h.cache = newReviewCache(opts.ReviewCacheSize)
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc(PathMutate, h.mutate)
	h.mux.HandleFunc(PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	h.mux.HandleFunc(PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !h.ready.Load() || (h.readyFn != nil && !h.readyFn()) {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	h.ready.Store(true)
	return h, nil
}

// SetReady sets what /readyz answers (false while shutting down).
func (h *Handler) SetReady(ready bool) { h.ready.Store(ready) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) mutate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.httpError(w, r, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.httpError(w, r, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	if r.ContentLength > h.max {
		h.httpError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", h.max))
		return
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, h.max), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.httpError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", h.max))
			return
		}
		h.httpError(w, r, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}

	req, pod, err := decodeReview(body)
	if err != nil {
		uid := lenientUID(body)
		if req != nil {
			uid = req.UID
		}
		resp := &admissionv1.AdmissionResponse{
			UID:      uid,
			Allowed:  true,
			Warnings: []string{"triage: " + err.Error() + "; not injected"},
		}
		h.log.Warn("bad admission review", "remote", r.RemoteAddr, "uid", resp.UID, "error", err.Error(), "bytes", len(body))
		h.write(w, r, resp)
		return
	}
	var (
		labels    map[string]string
		lookupErr error
	)
	if pod != nil {
		ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
		labels, lookupErr = h.ns.NamespaceLabels(ctx, req.Namespace)
		cancel()
		if lookupErr != nil {
			labels = FallbackNamespaceLabels
		}
	}
	compute := func() (*admissionv1.AdmissionResponse, *inject.Result) {
		h.slots <- struct{}{}
		defer func() { <-h.slots }()
		return inject.ReviewPod(req, pod, labels, h.cfg)
	}
	var (
		resp   *admissionv1.AdmissionResponse
		res    *inject.Result
		cached bool
	)
	if h.cache != nil && labels != nil && lookupErr == nil {
		resp, res, cached = h.cache.review(req, reviewKey(req.Namespace, labels, body, string(req.UID)), compute)
	} else {
		resp, res = compute()
	}
	if lookupErr != nil && res != nil && res.Injected {
		resp.Warnings = append([]string{fmt.Sprintf("triage: cannot read namespace %q's labels (%v); injected without the capture profile, checked against Pod Security level restricted", req.Namespace, lookupErr)}, resp.Warnings...)
	}
	h.write(w, r, resp)

	attrs := []any{
		"uid", string(req.UID), "namespace", req.Namespace, "name", podName(req, res),
		"operation", string(req.Operation), "resource", req.Resource.Resource,
		"allowed", resp.Allowed, "warnings", len(resp.Warnings), "cached", cached,
		"durationMs", float64(time.Since(start).Microseconds()) / 1000,
	}
	if res != nil {
		attrs = append(attrs, "injected", res.Injected, "reason", res.Decision.Reason)
		if res.Injected {
			attrs = append(attrs, "capture", res.Status.Capture, "mode", res.Status.Mode, "podSecurity", res.Status.PodSecurity)
			if res.Status.CaptureWithheld != "" {
				attrs = append(attrs, "captureWithheld", res.Status.CaptureWithheld)
			}
		}
	}
	if lookupErr != nil {
		h.log.Warn("namespace lookup failed", "namespace", req.Namespace, "error", lookupErr.Error())
	}
	h.log.Info("review", attrs...)
}

// readBody reads all of r, in one allocation when the length is announced.
func readBody(r io.Reader, length int64) ([]byte, error) {
	if length <= 0 {
		return io.ReadAll(r)
	}
	var buf bytes.Buffer
	buf.Grow(int(length) + 1) // +1: ReadFrom sees EOF without growing
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// wireReview is an AdmissionReview v1 whose request's object is decoded
// straight into a Pod: one pass over the body instead of one for the review
// (copying the object's bytes) and another for the pod, which was a fifth
// of the webhook's CPU under load.
type wireReview struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Request    *wireRequest `json:"request"`
}

// wireRequest shadows AdmissionRequest's object (a RawExtension, one level
// deeper) with a Pod.
type wireRequest struct {
	admissionv1.AdmissionRequest
	Object *corev1.Pod `json:"object"`
}

// decodeReview parses an AdmissionReview v1 with a request; for a pod
// CREATE it returns the pod decoded too. A body whose object is not a Pod
// is decoded again with the object left raw, as the API would have it.
func decodeReview(body []byte) (*admissionv1.AdmissionRequest, *corev1.Pod, error) {
	var wire wireReview
	typedErr := kjson.UnmarshalCaseSensitivePreserveInts(body, &wire)
	if typedErr == nil {
		if err := checkEnvelope(wire.APIVersion, wire.Kind, wire.Request == nil); err != nil {
			return nil, nil, err
		}
		req := &wire.Request.AdmissionRequest
		if inject.IsPodCreate(req) {
			return req, wire.Request.Object, nil
		}
	}
	var review admissionv1.AdmissionReview
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil {
		return nil, nil, fmt.Errorf("cannot decode the AdmissionReview (%v)", err)
	}
	if err := checkEnvelope(review.APIVersion, review.Kind, review.Request == nil); err != nil {
		return nil, nil, err
	}
	if inject.IsPodCreate(review.Request) {
		// The review decodes, the pod does not: say why, as inject.Review does.
		return review.Request, nil, fmt.Errorf("cannot decode the pod (%v)", typedErr)
	}
	return review.Request, nil, nil
}

func checkEnvelope(apiVersion, kind string, noRequest bool) error {
	if apiVersion != admissionv1.SchemeGroupVersion.String() || kind != "AdmissionReview" {
		return fmt.Errorf("got %q %q, want an AdmissionReview of %s", apiVersion, kind, admissionv1.SchemeGroupVersion)
	}
	if noRequest {
		return errors.New("the AdmissionReview has no request")
	}
	return nil
}

// lenientUID digs the request's uid out of a body that did not decode as a
// whole, so that the API server can still match the response.
func lenientUID(body []byte) types.UID {
	var partial struct {
		Request struct {
			UID types.UID `json:"uid"`
		} `json:"request"`
	}
	if kjson.UnmarshalCaseSensitivePreserveInts(body, &partial) == nil {
		return partial.Request.UID
	}
	return ""
}

// podName is the pod's name for the log: generateName when the name is not
// chosen yet (pods of controllers).
func podName(req *admissionv1.AdmissionRequest, res *inject.Result) string {
	switch {
	case req.Name != "":
		return req.Name
	case res == nil || res.Pod == nil:
		return ""
	case res.Pod.Name != "":
		return res.Pod.Name
	}
	return res.Pod.GenerateName
}

func (h *Handler) write(w http.ResponseWriter, r *http.Request, resp *admissionv1.AdmissionResponse) {
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: resp,
	}
	b, err := json.Marshal(&out)
	if err != nil {
		h.httpError(w, r, http.StatusInternalServerError, "encoding the response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (h *Handler) httpError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.log.Warn("rejected request", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "status", code, "error", msg)
	http.Error(w, msg, code)
}
