package auth

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// KubeAPIGroup is the API group of the virtual pod subresources that
// SubjectAccessReviews check: get on pods/view, pods/profile, pods/capture
// and pods/operate in group triage.dev.
const KubeAPIGroup = "triage.dev"

// ErrReviewUnavailable is wrapped by KubeReviewer's errors when the API
// server could not be asked (network, RBAC of the sidecar itself): the
// token or caller may be fine. Map it to gRPC Unavailable.
var ErrReviewUnavailable = errors.New("the API server could not review the request")

// Defaults of ReviewConfig.
const (
	DefaultReviewCacheTTL       = 10 * time.Second
	DefaultReviewDeniedCacheTTL = 2 * time.Second
	DefaultReviewCacheEntries   = 1024
)

// ReviewConfig configures a KubeReviewer.
type ReviewConfig struct {
	// Client talks to the API server with the sidecar's ServiceAccount
	// (NewReviewHTTP).
	Client ReviewAPI
	// Audiences are sent as spec.audiences of every TokenReview; the API
	// server must confirm one. Default [DefaultAudience].
	Audiences []string
	// Namespace and PodName are the sidecar's pod (from the downward API);
	// SubjectAccessReviews ask about this pod.
	Namespace, PodName string
	// CacheTTL is how long an authenticated token and an allowed decision
	// are cached. Default DefaultReviewCacheTTL.
	CacheTTL time.Duration
	// DeniedCacheTTL is how long a refused token and a denied decision are
	// cached. Default DefaultReviewDeniedCacheTTL. Errors are never cached.
	DeniedCacheTTL time.Duration
	// MaxCacheEntries bounds each of the two caches (least recently used
	// entries go first). Default DefaultReviewCacheEntries.
	MaxCacheEntries int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// KubeReviewer authenticates ServiceAccount tokens with TokenReview and
// authorizes calls with SubjectAccessReview, as the kubelet does. Unlike
// JWKSVerifier it sees revocation (a deleted pod or ServiceAccount) and
// lets cluster RBAC decide, at the cost of API server round trips, which
// are cached: tokens by their SHA-256 (never the token itself), decisions
// by the caller and permission.
//
// RBAC it needs. The sidecar's ServiceAccount must be allowed to create
// tokenreviews and subjectaccessreviews, which the built-in ClusterRole
// system:auth-delegator grants:
//
//	apiVersion: rbac.authorization.k8s.io/v1
//	kind: ClusterRoleBinding
//	metadata: {name: "triage-sidecar:auth-delegator"}
//	roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
//	subjects: [{kind: ServiceAccount, name: shop-app, namespace: shop}]
//
// Callers are then granted get on the virtual subresources pods/view,
// pods/profile, pods/capture and pods/operate in API group triage.dev
// (PermissionSubresource). Roles are not cumulative in RBAC, so a profiler
// role lists view and profile:
//
//	apiVersion: rbac.authorization.k8s.io/v1
//	kind: ClusterRole
//	metadata: {name: "triage:profiler"}
//	rules:
//	- apiGroups: ["triage.dev"]
//	  resources: ["pods/view", "pods/profile"]
//	  verbs: ["get"]
//
// bound in the application's namespace with a RoleBinding (or cluster-wide
// with a ClusterRoleBinding), optionally limited to named pods with
// resourceNames. testdata/kube-rbac.yaml holds the full set.
type KubeReviewer struct {
	cfg       ReviewConfig
	audiences []string
	now       func() time.Time
	tokens    *ttlCache[tokenResult]
	decisions *ttlCache[decision]
}

type tokenResult struct {
	id  KubeIdentity
	err error // a *TokenError; API failures are not cached
}

type decision struct {
	allowed bool
	reason  string
}

// NewKubeReviewer checks cfg and returns a reviewer.
func NewKubeReviewer(cfg ReviewConfig) (*KubeReviewer, error) {
	if cfg.Client == nil {
		return nil, errors.New("kubernetes review: no API client; build one with NewReviewHTTP")
	}
	if cfg.Namespace == "" || cfg.PodName == "" {
		return nil, errors.New("kubernetes review: the pod's namespace and name are needed for SubjectAccessReviews; pass them from the downward API (fieldRef metadata.namespace and metadata.name)")
	}
	r := &KubeReviewer{cfg: cfg, now: cfg.Now}
	if r.now == nil {
		r.now = time.Now
	}
	r.audiences = slices.Clone(cfg.Audiences)
	if len(r.audiences) == 0 {
		r.audiences = []string{DefaultAudience}
	}
	if slices.Contains(r.audiences, "") {
		return nil, errors.New("kubernetes review: an audience is empty; use e.g. " + DefaultAudience)
	}
	if r.cfg.CacheTTL <= 0 {
		r.cfg.CacheTTL = DefaultReviewCacheTTL
	}
	if r.cfg.DeniedCacheTTL <= 0 {
		r.cfg.DeniedCacheTTL = DefaultReviewDeniedCacheTTL
	}
	if r.cfg.MaxCacheEntries <= 0 {
		r.cfg.MaxCacheEntries = DefaultReviewCacheEntries
	}
	r.tokens = newTTLCache[tokenResult](r.cfg.MaxCacheEntries)
	r.decisions = newTTLCache[decision](r.cfg.MaxCacheEntries)
	return r, nil
}

// Authenticate asks the API server (TokenReview, audiences = the
// configured ones) who token belongs to. A refused token gives a
// *TokenError (errors.Is ErrInvalidToken); a failed API call an error
// wrapping ErrReviewUnavailable.
func (r *KubeReviewer) Authenticate(ctx context.Context, token string) (KubeIdentity, error) {
	if token == "" {
		return KubeIdentity{}, tokenErr(ReasonMalformed, nil, "no token; send a ServiceAccount token minted with %s", mintCommand("", "", r.audiences[0]))
	}
	if len(token) > maxTokenBytes {
		return KubeIdentity{}, tokenErr(ReasonMalformed, nil, "token is %d bytes, more than the %d a ServiceAccount token can be", len(token), maxTokenBytes)
	}
	key := sha256.Sum256([]byte("tokenreview\x00" + token))
	now := r.now()
	if res, ok := r.tokens.get(key, now); ok {
		return res.id.clone(), res.err
	}
	st, err := r.cfg.Client.CreateTokenReview(ctx, TokenReviewSpec{Token: token, Audiences: r.audiences})
	if err != nil {
		return KubeIdentity{}, reviewErr("TokenReview", "tokenreviews", err)
	}
	id, terr := r.identityFrom(st)
	if terr != nil {
		r.tokens.put(key, tokenResult{err: terr}, now.Add(r.cfg.DeniedCacheTTL))
		return KubeIdentity{}, terr
	}
	r.tokens.put(key, tokenResult{id: id}, now.Add(r.cfg.CacheTTL))
	return id.clone(), nil
}

// identityFrom checks a TokenReview's status and builds the identity.
func (r *KubeReviewer) identityFrom(st TokenReviewStatus) (KubeIdentity, error) {
	mint := mintCommand("", "", r.audiences[0])
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "no reason given"
		}
		return KubeIdentity{}, tokenErr(ReasonReview, nil, "the API server refused the token for audience %s: %s; mint a fresh one with %s", strings.Join(r.audiences, ", "), quoteLong(why), mint)
	}
	if !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(r.audiences, a) }) {
		return KubeIdentity{}, tokenErr(ReasonAudience, nil, "the API server authenticated the token but for audiences %s, not triage's (%s); mint one with %s", quoteList(st.Audiences), strings.Join(r.audiences, ", "), mint)
	}
	u := st.User
	if u.Username == "" || checkIdentity(u.Username) != "" {
		return KubeIdentity{}, tokenErr(ReasonClaims, nil, "the API server authenticated the token as user %s, which triage cannot use as an identity", quoteShort(u.Username))
	}
	id := KubeIdentity{Username: u.Username, Groups: slices.Clone(u.Groups), Audience: slices.Clone(st.Audiences)}
	if ns, name, ok := splitServiceAccountUsername(u.Username); ok {
		id.Namespace, id.ServiceAccount, id.ServiceAccountUID = ns, name, u.UID
	}
	id.Extra = cloneExtra(u.Extra)
	first := func(k string) string {
		if v := u.Extra[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	id.BoundPod, id.BoundPodUID = first(extraPodName), first(extraPodUID)
	id.BoundNode, id.BoundNodeUID = first(extraNodeName), first(extraNodeUID)
	id.CredentialID = strings.TrimPrefix(first(extraCredentialID), "JTI=")
	return id, nil
}

// Authorize asks the API server (SubjectAccessReview) whether id may "get"
// the subresource pods/<perm> in group triage.dev of the sidecar's pod.
// reason explains a denial and what to grant. err, wrapping
// ErrReviewUnavailable, means no decision was made. PERMISSION_UNSPECIFIED
// is never allowed.
func (r *KubeReviewer) Authorize(ctx context.Context, id KubeIdentity, perm triagev1.Permission) (allowed bool, reason string, err error) {
	sub, ok := PermissionSubresource(perm)
	if !ok {
		return false, fmt.Sprintf("permission %v is not one triage grants", perm), nil
	}
	if id.Username == "" {
		return false, "no authenticated user", nil
	}
	key := decisionKey(id, sub)
	now := r.now()
	if d, ok := r.decisions.get(key, now); ok {
		return d.allowed, d.reason, nil
	}
	spec := SubjectAccessReviewSpec{
		User:   id.Username,
		UID:    id.ServiceAccountUID,
		Groups: slices.Clone(id.Groups),
		ResourceAttributes: &ResourceAttributes{
			Namespace:   r.cfg.Namespace,
			Verb:        "get",
			Group:       KubeAPIGroup,
			Resource:    "pods",
			Subresource: sub,
			Name:        r.cfg.PodName,
		},
	}
	spec.Extra = cloneExtra(id.Extra)
	st, err := r.cfg.Client.CreateSubjectAccessReview(ctx, spec)
	if err != nil {
		return false, "", reviewErr("SubjectAccessReview", "subjectaccessreviews", err)
	}
	if st.Allowed && !st.Denied {
		d := decision{allowed: true, reason: st.Reason}
		r.decisions.put(key, d, now.Add(r.cfg.CacheTTL))
		return true, d.reason, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s may not get pods/%s (API group %s) of pod %s/%s", id.Username, sub, KubeAPIGroup, r.cfg.Namespace, r.cfg.PodName)
	if st.Reason != "" {
		fmt.Fprintf(&b, ": %s", quoteLong(st.Reason))
	}
	if st.EvaluationError != "" {
		fmt.Fprintf(&b, " (evaluation error: %s)", quoteLong(st.EvaluationError))
	}
	role, _ := MinimalRole(perm)
	fmt.Fprintf(&b, "; grant it with a RoleBinding in namespace %s to a role allowing get on pods/%s in group %s, e.g. the ClusterRole triage:%s", r.cfg.Namespace, sub, KubeAPIGroup, role)
	d := decision{reason: b.String()}
	r.decisions.put(key, d, now.Add(r.cfg.DeniedCacheTTL))
	return false, d.reason, nil
}

// reviewErr wraps a failed review call with ErrReviewUnavailable and a hint.
func reviewErr(kind, resource string, err error) error {
	hint := "check that the sidecar can reach the API server"
	if isAuthError(err) {
		hint = "the sidecar's ServiceAccount needs create on " + resource + ": bind it to the ClusterRole system:auth-delegator"
	}
	return fmt.Errorf("%w: %s: %w; %s", ErrReviewUnavailable, kind, err, hint)
}

// quoteLong quotes an API server message, bounded to 512 bytes.
func quoteLong(s string) string { return quoteBounded(s, 512) }

// decisionKey hashes everything a SubjectAccessReview depends on, with
// length prefixes so distinct inputs cannot collide by concatenation.
func decisionKey(id KubeIdentity, sub string) [32]byte {
	h := sha256.New()
	var n [8]byte
	writeLen := func(l int) {
		binary.BigEndian.PutUint64(n[:], uint64(l))
		h.Write(n[:])
	}
	write := func(s string) {
		writeLen(len(s))
		h.Write([]byte(s))
	}
	write("subjectaccessreview")
	write(sub)
	write(id.Username)
	write(id.ServiceAccountUID)
	writeLen(len(id.Groups))
	for _, g := range id.Groups {
		write(g)
	}
	keys := slices.Sorted(maps.Keys(id.Extra))
	writeLen(len(keys))
	for _, k := range keys {
		write(k)
		writeLen(len(id.Extra[k]))
		for _, v := range id.Extra[k] {
			write(v)
		}
	}
	var key [32]byte
	h.Sum(key[:0])
	return key
}

// clone returns a deep copy, so callers cannot change cached identities.
func (id KubeIdentity) clone() KubeIdentity {
	id.Groups = slices.Clone(id.Groups)
	id.Audience = slices.Clone(id.Audience)
	id.Extra = cloneExtra(id.Extra)
	return id
}

// cloneExtra deep-copies a user's extra information; empty is nil.
func cloneExtra(m map[string][]string) map[string][]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// ttlCache is a bounded map with per-entry expiry; when full, the least
// recently used entry is evicted. Keys are hashes.
type ttlCache[V any] struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]*list.Element
	ll  *list.List // of *ttlEntry[V], most recently used first
}

type ttlEntry[V any] struct {
	key     [32]byte
	val     V
	expires time.Time
}

func newTTLCache[V any](max int) *ttlCache[V] {
	return &ttlCache[V]{max: max, m: make(map[[32]byte]*list.Element), ll: list.New()}
}

func (c *ttlCache[V]) get(key [32]byte, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.m[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*ttlEntry[V])
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.m, key)
		return zero, false
	}
	c.ll.MoveToFront(el)
	return e.val, true
}

func (c *ttlCache[V]) put(key [32]byte, val V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		e := el.Value.(*ttlEntry[V])
		e.val, e.expires = val, expires
		c.ll.MoveToFront(el)
		return
	}
	for c.ll.Len() >= c.max {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.m, oldest.Value.(*ttlEntry[V]).key)
	}
	c.m[key] = c.ll.PushFront(&ttlEntry[V]{key: key, val: val, expires: expires})
}

func (c *ttlCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
