package injector

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/triage-sh/triage/internal/inject"
)

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// countGets counts the clientset's namespace GETs.
func countGets(cs *fake.Clientset) *atomic.Int64 {
	var n atomic.Int64
	cs.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		return false, nil, nil
	})
	return &n
}

// TestNamespaceLabelsDecideCapture: the webhook reads the namespace's labels
// through client-go: privileged grants the capture profile, baseline
// withholds it (once the cached labels expire), and a namespace that cannot
// be read gets the sidecar without capture and a warning.
func TestNamespaceLabelsDecideCapture(t *testing.T) {
	cs := fake.NewClientset(namespace("netops", nsPrivileged))
	gets := countGets(cs)
	cache := NewNamespaceCache(cs, time.Minute)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	cache.now = func() time.Time { return time.Unix(0, clock.Load()) }
	ts := startServer(t, serverOpts{ns: cache})
	req := readRequest(t, "capture_privileged") // namespace netops, asks for capture

	resp := ts.review(t, req)
	_, pod := applyPatch(t, req, resp)
	if !hasNetRaw(sidecar(pod)) {
		t.Fatalf("privileged namespace: no NET_RAW; warnings %q", resp.Warnings)
	}
	ts.review(t, req)
	if n := gets.Load(); n != 1 {
		t.Errorf("%d namespace GETs for two reviews within the TTL, want 1", n)
	}

	if _, err := cs.CoreV1().Namespaces().Update(context.Background(), namespace("netops", nsBaseline), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if resp := ts.review(t, req); !bytesContain(resp.Patch, "NET_RAW") {
		t.Errorf("within the TTL the cached privileged labels should still apply")
	}
	clock.Add(int64(2 * time.Minute))
	resp = ts.review(t, req)
	_, pod = applyPatch(t, req, resp)
	if sidecar(pod) == nil || hasNetRaw(sidecar(pod)) {
		t.Errorf("baseline namespace: sidecar %v, NET_RAW %v; want the sidecar without NET_RAW", sidecar(pod) != nil, hasNetRaw(sidecar(pod)))
	}
	if !warningsContain(resp.Warnings, "capture profile withheld") {
		t.Errorf("no warning about the withheld capture: %q", resp.Warnings)
	}

	// The namespace cannot be read: injected, no capture, a warning.
	if err := cs.CoreV1().Namespaces().Delete(context.Background(), "netops", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(time.Hour)) // past the stale window too
	resp = ts.review(t, req)
	_, pod = applyPatch(t, req, resp)
	if sidecar(pod) == nil || hasNetRaw(sidecar(pod)) {
		t.Errorf("lookup failure: sidecar %v, NET_RAW %v; want the sidecar without NET_RAW", sidecar(pod) != nil, hasNetRaw(sidecar(pod)))
	}
	if !warningsContain(resp.Warnings, `cannot read namespace "netops"`) {
		t.Errorf("no lookup warning: %q", resp.Warnings)
	}
	var st inject.Status
	if err := json.Unmarshal([]byte(pod.Annotations[inject.AnnotationStatus]), &st); err != nil || st.Capture || st.PodSecurity != "restricted:latest" {
		t.Errorf("status %+v (%v), want capture off, checked at restricted:latest", st, err)
	}

	// An opt-out pod in an unreadable namespace: untouched, no warning.
	if resp := ts.review(t, readRequest(t, "pod_opt_out")); resp.Patch != nil || len(resp.Warnings) != 0 {
		t.Errorf("opt-out pod: patch %s warnings %q", resp.Patch, resp.Warnings)
	}
}

func bytesContain(b []byte, s string) bool { return strings.Contains(string(b), s) }

// TestNamespaceCacheSharesLookups: concurrent lookups of one namespace make
// one GET.
func TestNamespaceCacheSharesLookups(t *testing.T) {
	cs := fake.NewClientset(namespace("shop", nsEnabled))
	release := make(chan struct{})
	var gets atomic.Int64
	cs.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		gets.Add(1)
		<-release
		return false, nil, nil
	})
	cache := NewNamespaceCache(cs, time.Minute)
	var wg sync.WaitGroup
	results := make(chan map[string]string, 20)
	for range 20 {
		wg.Go(func() {
			l, err := cache.NamespaceLabels(context.Background(), "shop")
			if err != nil {
				t.Error(err)
			}
			results <- l
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	close(results)
	for l := range results {
		if l[inject.LabelNamespaceInjection] != "enabled" {
			t.Errorf("labels %v", l)
		}
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("%d GETs, want 1", n)
	}
}

// TestNamespaceCacheStaleAndTimeout: a failed refresh serves labels fetched
// within the stale window; a caller whose context ends gets its error
// without failing the lookup for others.
func TestNamespaceCacheStaleAndTimeout(t *testing.T) {
	cs := fake.NewClientset(namespace("shop", nsEnabled))
	var fail atomic.Bool
	block := make(chan struct{})
	cs.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fail.Load() {
			return true, nil, errors.New("apiserver unavailable")
		}
		<-block
		return false, nil, nil
	})
	cache := NewNamespaceCache(cs, time.Second)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	cache.now = func() time.Time { return time.Unix(0, clock.Load()) }

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if _, err := cache.NamespaceLabels(ctx, "shop"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blocked lookup: err %v, want deadline exceeded", err)
	}
	cancel()
	close(block) // the shared GET finishes and fills the cache
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := cache.NamespaceLabels(context.Background(), "shop")
		if err == nil && l[inject.LabelNamespaceInjection] == "enabled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("labels %v err %v", l, err)
		}
	}

	fail.Store(true)
	clock.Add(int64(5 * time.Second)) // expired, within the stale window
	if l, err := cache.NamespaceLabels(context.Background(), "shop"); err != nil || l[inject.LabelNamespaceInjection] != "enabled" {
		t.Errorf("stale labels: %v %v", l, err)
	}
	clock.Add(int64(DefaultNamespaceStale))
	if _, err := cache.NamespaceLabels(context.Background(), "shop"); err == nil {
		t.Errorf("past the stale window: no error")
	}
	if _, err := cache.NamespaceLabels(context.Background(), "unknown"); err == nil {
		t.Errorf("unknown namespace: no error")
	}
}
