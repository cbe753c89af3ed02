package injector

import (
	"context"
	"maps"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Defaults of NamespaceCache.
const (
	DefaultNamespaceTTL   = 30 * time.Second
	DefaultNamespaceStale = 10 * time.Minute
	defaultFetchTimeout   = 2 * time.Second
)

// NamespaceCache reads namespaces' labels from the API server (RBAC: get
// namespaces) and keeps them for a TTL. Concurrent lookups of one namespace
// share one request. When a refresh fails, labels fetched less than Stale
// ago are served instead of an error.
type NamespaceCache struct {
	client kubernetes.Interface
	ttl    time.Duration
	stale  time.Duration
	fetch  time.Duration
	now    func() time.Time

	mu       sync.Mutex
	entries  map[string]nsEntry
	inflight map[string]*nsCall
}

type nsEntry struct {
	labels  map[string]string
	fetched time.Time
}

type nsCall struct {
	done   chan struct{}
	labels map[string]string
	err    error
}

// NewNamespaceCache returns a cache over client; ttl <= 0 means DefaultNamespaceTTL.
func NewNamespaceCache(client kubernetes.Interface, ttl time.Duration) *NamespaceCache {
	if ttl <= 0 {
		ttl = DefaultNamespaceTTL
	}
	return &NamespaceCache{
		client: client, ttl: ttl, stale: DefaultNamespaceStale, fetch: defaultFetchTimeout, now: time.Now,
		entries: map[string]nsEntry{}, inflight: map[string]*nsCall{},
	}
}

// NamespaceLabels implements NamespaceLabeler. The map returned must not be modified.
func (c *NamespaceCache) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	c.mu.Lock()
	if e, ok := c.entries[name]; ok && c.now().Sub(e.fetched) < c.ttl {
		c.mu.Unlock()
		return e.labels, nil
	}
	call := c.inflight[name]
	if call == nil {
		call = &nsCall{done: make(chan struct{})}
		c.inflight[name] = call
		go c.get(name, call)
	}
	c.mu.Unlock()

	var err error
	select {
	case <-call.done:
		if call.err == nil {
			return call.labels, nil
		}
		err = call.err
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[name]; ok && c.now().Sub(e.fetched) < c.stale {
		return e.labels, nil
	}
	return nil, err
}

// get fetches one namespace with a context of its own, so that a caller
// giving up does not fail the others waiting on the same call.
func (c *NamespaceCache) get(name string, call *nsCall) {
	ctx, cancel := context.WithTimeout(context.Background(), c.fetch)
	defer cancel()
	ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	c.mu.Lock()
	if err == nil {
		call.labels = maps.Clone(ns.Labels)
		if call.labels == nil {
			call.labels = map[string]string{}
		}
		c.entries[name] = nsEntry{labels: call.labels, fetched: c.now()}
	}
	call.err = err
	delete(c.inflight, name)
	c.mu.Unlock()
	close(call.done)
}
