package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/triage-sh/triage/internal/inject"
	"github.com/triage-sh/triage/internal/injector"
	"github.com/triage-sh/triage/internal/kubetest/cluster"
)

// manifest is the webhook configuration the tests register, with its
// clientConfig pointed at the in-process server.
const manifest = "../../deploy/base/mutatingwebhookconfiguration.yaml"

// webhook is internal/injector's handler served in-process over TLS, behind
// a wrapper that counts the reviews it receives per namespace and per pod.
type webhook struct {
	addr    string // 127.0.0.1:PORT, kept across stop and restart
	caPEM   []byte
	keyPair tls.Certificate
	certs   *injector.CertReloader
	handler http.Handler
	log     *slog.Logger

	// hang makes /mutate answer nothing until the API server gives up.
	hang atomic.Bool

	mu    sync.Mutex
	srv   *http.Server
	calls map[string]int // "ns" and "ns/name"
}

func (w *webhook) url() string { return "https://" + w.addr + injector.PathMutate }

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path == injector.PathMutate {
		body, err := io.ReadAll(io.LimitReader(r.Body, injector.DefaultMaxRequestBytes+1))
		if err == nil {
			var review struct {
				Request *struct {
					Namespace string `json:"namespace"`
					Name      string `json:"name"`
				} `json:"request"`
			}
			if json.Unmarshal(body, &review) == nil && review.Request != nil {
				w.mu.Lock()
				w.calls[review.Request.Namespace]++
				w.calls[review.Request.Namespace+"/"+review.Request.Name]++
				w.mu.Unlock()
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if w.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
	}
	w.handler.ServeHTTP(rw, r)
}

// callsFor is how many reviews the webhook received for key ("ns" or "ns/name").
func (w *webhook) callsFor(key string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[key]
}

// start serves on w.addr (again, after stop).
func (w *webhook) start() error {
	ln, err := net.Listen("tcp", w.addr)
	if err != nil {
		return err
	}
	srv := injector.NewHTTPServer(w.addr, w, w.certs, w.log)
	w.mu.Lock()
	w.srv = srv
	w.mu.Unlock()
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return nil
}

// stop closes the listener and every connection: the webhook is down.
func (w *webhook) stop() {
	w.mu.Lock()
	srv := w.srv
	w.srv = nil
	w.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// startWebhook serves the injector, registers the manifest's
// MutatingWebhookConfiguration and waits until the API server calls it.
func (c *controlPlane) startWebhook() error {
	serving, err := c.CA().IssueServing("triage-injector", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	crt, key := filepath.Join(c.Dir(), "webhook.crt"), filepath.Join(c.Dir(), "webhook.key")
	if err := os.WriteFile(crt, serving.CertPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(key, serving.KeyPEM, 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(c.Dir(), "injector.log"))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logf, nil))
	certs, err := injector.NewCertReloader(crt, key, log)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		return err
	}
	h, err := injector.NewHandler(injector.Options{
		Namespaces: injector.NewNamespaceCache(c.Client(), 0),
		Logger:     log,
	})
	if err != nil {
		return err
	}
	ports, err := cluster.FreePorts(1)
	if err != nil {
		return err
	}
	w := &webhook{
		addr:    fmt.Sprintf("127.0.0.1:%d", ports[0]),
		caPEM:   c.CAData(),
		keyPair: pair,
		certs:   certs,
		handler: h,
		log:     log,
		calls:   map[string]int{},
	}
	if err := w.start(); err != nil {
		return err
	}
	c.hook = w

	mwc, err := loadWebhookConfig(w.url(), w.caPEM)
	if err != nil {
		return err
	}
	cx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().Create(cx, mwc, metav1.CreateOptions{}); err != nil {
		return err
	}
	ns, err := c.createNamespace(cx, "probe", map[string]string{inject.LabelNamespaceInjection: "enabled"})
	if err != nil {
		return err
	}
	return c.waitForMutation(cx, ns, func(p *corev1.Pod) bool { return sidecarCount(p) == 1 })
}

// loadWebhookConfig decodes the manifest strictly and points both webhooks
// at url, trusting caPEM.
func loadWebhookConfig(url string, caPEM []byte) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	b, err := os.ReadFile(manifest)
	if err != nil {
		return nil, err
	}
	j, err := yaml.ToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := dec.Decode(&mwc); err != nil {
		return nil, fmt.Errorf("%s: %w", manifest, err)
	}
	if len(mwc.Webhooks) != 2 {
		return nil, fmt.Errorf("%s: %d webhooks, want 2 (namespace opt-in, pod opt-in)", manifest, len(mwc.Webhooks))
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
	}
	return &mwc, nil
}

// createNamespace creates a namespace named kt-PREFIX-RANDOM.
func (c *controlPlane) createNamespace(cx context.Context, prefix string, labels map[string]string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kt-" + prefix + "-" + randomHex(3), Labels: labels}}
	_, err := c.Client().CoreV1().Namespaces().Create(cx, ns, metav1.CreateOptions{})
	return ns.Name, err
}

// waitForMutation creates dry-run pods in ns until one comes back as ok
// wants: the API server picks up webhook configurations asynchronously.
func (c *controlPlane) waitForMutation(cx context.Context, ns string, ok func(*corev1.Pod) bool) error {
	for {
		p, err := c.Client().CoreV1().Pods(ns).Create(cx, newPod("probe-"+randomHex(4)), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && ok(p) {
			return nil
		}
		select {
		case <-cx.Done():
			return fmt.Errorf("waiting for the webhook in namespace %s: %w (last error: %v)", ns, errTimeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// namespace creates a namespace for t.
func namespace(t *testing.T, c *controlPlane, labels map[string]string) string {
	t.Helper()
	prefix := strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	prefix = strings.NewReplacer("/", "-", "_", "-").Replace(prefix)
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	ns, err := c.createNamespace(ctx(t), strings.Trim(prefix, "-"), labels)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// newPod is a bare pod with one app container. Its serviceAccountName is
// "default", as the ServiceAccount admission plugin (off here: no
// controller makes the default ServiceAccounts) would set it; the API
// server refuses the sidecar's projected token volume without one.
func newPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "demo"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "default",
			Containers:         []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
}

// restrictedPod passes the restricted Pod Security Standard on its own.
func restrictedPod(name string) *corev1.Pod {
	p := newPod(name)
	p.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr(true),
		RunAsUser:      ptr(int64(1000)),
		RunAsGroup:     ptr(int64(1000)),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	return p
}

func ptr[T any](v T) *T { return &v }

var cfg = inject.DefaultConfig()

// sidecarCount is how many triage sidecars the pod has.
func sidecarCount(p *corev1.Pod) int {
	n := 0
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range list {
			if c.Name == cfg.ContainerName {
				n++
			}
		}
	}
	return n
}

func sidecar(t *testing.T, p *corev1.Pod) *corev1.Container {
	t.Helper()
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			if list[i].Name == cfg.ContainerName {
				return &list[i]
			}
		}
	}
	t.Fatalf("pod %s/%s has no %s container; init containers %v, containers %v", p.Namespace, p.Name, cfg.ContainerName, names(p.Spec.InitContainers), names(p.Spec.Containers))
	return nil
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func status(t *testing.T, p *corev1.Pod) inject.Status {
	t.Helper()
	raw, ok := p.Annotations[inject.AnnotationStatus]
	if !ok {
		t.Fatalf("pod %s/%s has no %s annotation; annotations %v", p.Namespace, p.Name, inject.AnnotationStatus, p.Annotations)
	}
	var st inject.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("%s: %v: %s", inject.AnnotationStatus, err, raw)
	}
	return st
}

// assertUntouched fails unless p carries nothing of triage's.
func assertUntouched(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if n := sidecarCount(p); n != 0 {
		t.Errorf("pod %s/%s has %d sidecars, want none", p.Namespace, p.Name, n)
	}
	if _, ok := p.Annotations[inject.AnnotationStatus]; ok {
		t.Errorf("pod %s/%s has %s", p.Namespace, p.Name, inject.AnnotationStatus)
	}
	for _, v := range p.Spec.Volumes {
		if v.Name == cfg.VolumeName {
			t.Errorf("pod %s/%s has the %s volume", p.Namespace, p.Name, v.Name)
		}
	}
}

func createPod(t *testing.T, c *controlPlane, ns string, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := c.Client().CoreV1().Pods(ns).Create(ctx(t), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, p.Name, err)
	}
	return out
}

// warnings records the Warning headers the API server sends (299).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(code int, _ string, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	w.list = append(w.list, text)
	w.mu.Unlock()
}

func (w *warnings) containing(s string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, x := range w.list {
		if strings.Contains(x, s) {
			out = append(out, x)
		}
	}
	return out
}

// mutator is a second mutating webhook that annotates every pod it sees,
// ordered after triage's (configurations are called in name order), so that
// the API server reinvokes triage's webhook (reinvocationPolicy IfNeeded).
type mutator struct {
	srv *http.Server
	url string
}

const touched = "kubetest.triage.dev/touched"

func startMutator(t *testing.T, w *webhook) *mutator {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(rw, "bad review", http.StatusBadRequest)
			return
		}
		var pod corev1.Pod
		_ = json.Unmarshal(review.Request.Object.Raw, &pod)
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		if pod.Annotations[touched] == "" {
			var patch []map[string]any
			if pod.Annotations == nil {
				patch = append(patch, map[string]any{"op": "add", "path": "/metadata/annotations", "value": map[string]string{}})
			}
			patch = append(patch, map[string]any{"op": "add", "path": "/metadata/annotations/" + strings.ReplaceAll(touched, "/", "~1"), "value": "true"})
			b, _ := json.Marshal(patch)
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = b, &pt
		}
		review.Response, review.Request = resp, nil
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(&review)
	})
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{w.keyPair}}, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return &mutator{srv: srv, url: "https://" + ln.Addr().String() + "/mutate"}
}
