package injector

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/triage-sh/triage/internal/inject"
)

// DefaultReviewCacheSize is how many distinct answers the review cache keeps.
const DefaultReviewCacheSize = 512

// reviewCache remembers the answer to a pod CREATE by the hash of what the
// answer depends on: the namespace's name and labels and the request's bytes
// without its UID, which hold the pod object (the Config is fixed for the
// Handler's life, and inject.Review is a pure function of these; hashing
// more than the pod only makes the key stricter). The pods a ReplicaSet, Job or DaemonSet creates
// from one template arrive byte-identical (generateName, no name, no uid),
// so a scale-up of 50 replicas is answered once and 49 times from here, and
// concurrent identical reviews wait for the first instead of redoing it.
type reviewCache struct {
	max      int
	mu       sync.Mutex
	entries  map[[32]byte]*cachedReview
	inflight map[[32]byte]chan struct{}
}

// cachedReview is an answer without the request's UID.
type cachedReview struct {
	patch    []byte
	warnings []string
	result   *inject.Result // for the log; Pod keeps only its names
}

func newReviewCache(max int) *reviewCache {
	return &reviewCache{max: max, entries: map[[32]byte]*cachedReview{}, inflight: map[[32]byte]chan struct{}{}}
}

// reviewKey hashes a namespace, its labels and body, the bytes the answer
// is computed from, leaving out every occurrence of omit (the request's
// UID, a random UUID the API server sets per request) so that the reviews
// of byte-identical pods share a key; the pieces are hashed in place, not
// copied.
func reviewKey(namespace string, labels map[string]string, body []byte, omit string) [32]byte {
	h := sha256.New()
	h.Write([]byte(namespace))
	h.Write([]byte{0})
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{1})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0})
	}
	h.Write([]byte{0})
	for omit != "" {
		i := bytes.Index(body, []byte(omit))
		if i < 0 {
			break
		}
		h.Write(body[:i])
		body = body[i+len(omit):]
	}
	h.Write(body)
	var key [32]byte
	h.Sum(key[:0])
	return key
}

// review answers req from the cache or with compute, which runs once per
// key at a time; key is reviewKey's.
func (c *reviewCache) review(req *admissionv1.AdmissionRequest, key [32]byte, compute func() (*admissionv1.AdmissionResponse, *inject.Result)) (*admissionv1.AdmissionResponse, *inject.Result, bool) {
	for {
		c.mu.Lock()
		if e, ok := c.entries[key]; ok {
			c.mu.Unlock()
			return e.response(req), e.result, true
		}
		wait, busy := c.inflight[key]
		if !busy {
			c.inflight[key] = make(chan struct{})
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		<-wait
	}
	var (
		resp *admissionv1.AdmissionResponse
		res  *inject.Result
	)
	defer func() { // also when compute panics: waiters retry
		c.mu.Lock()
		defer c.mu.Unlock()
		if resp != nil {
			c.store(key, resp, res)
		}
		close(c.inflight[key])
		delete(c.inflight, key)
	}()
	resp, res = compute()
	return resp, res, false
}

func (c *reviewCache) store(key [32]byte, resp *admissionv1.AdmissionResponse, res *inject.Result) {
	if len(c.entries) >= c.max {
		for k := range c.entries { // evict one at random
			delete(c.entries, k)
			break
		}
	}
	e := &cachedReview{patch: resp.Patch, warnings: slices.Clone(resp.Warnings)}
	if res != nil {
		r := *res
		r.Pod = nil
		if res.Pod != nil { // the names, for the log
			r.Pod = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: res.Pod.Name, GenerateName: res.Pod.GenerateName}}
		}
		e.result = &r
	}
	c.entries[key] = e
}

func (e *cachedReview) response(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true, Warnings: slices.Clone(e.warnings)}
	if e.patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = e.patch, &pt
	}
	return resp
}
