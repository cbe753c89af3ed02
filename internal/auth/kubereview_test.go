package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// fakeReviews answers TokenReviews and SubjectAccessReviews like an API
// server with a fixed set of tokens and RBAC grants.
type fakeReviews struct {
	tokens map[string]authenticationv1.TokenReviewStatus
	// grants maps a username to the subresources of pods it may get.
	grants  map[string][]string
	fail    error // non-nil: every review fails with it
	trCalls atomic.Int32
	sarSeen []authorizationv1.SubjectAccessReviewSpec
	trSeen  []authenticationv1.TokenReviewSpec
}

func (f *fakeReviews) client() *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		f.trCalls.Add(1)
		if f.fail != nil {
			return true, nil, f.fail
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		f.trSeen = append(f.trSeen, tr.Spec)
		out := tr.DeepCopy()
		st, ok := f.tokens[tr.Spec.Token]
		if !ok {
			st = authenticationv1.TokenReviewStatus{Error: "[invalid bearer token, square/go-jose: error in cryptographic primitive]"}
		}
		out.Status = st
		return true, out, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if f.fail != nil {
			return true, nil, f.fail
		}
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		f.sarSeen = append(f.sarSeen, sar.Spec)
		out := sar.DeepCopy()
		ra := sar.Spec.ResourceAttributes
		if ra != nil && ra.Group == KubeAPIGroup && ra.Resource == "pods" && ra.Verb == "get" && ra.Namespace == "shop" && ra.Name == "web-0" &&
			slices.Contains(f.grants[sar.Spec.User], ra.Subresource) {
			out.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: `RBAC: allowed by RoleBinding "triage" of ClusterRole "triage:profiler"`}
		} else {
			out.Status = authorizationv1.SubjectAccessReviewStatus{Reason: ""}
		}
		return true, out, nil
	})
	return cs
}

// saStatus is the TokenReview status of a pod-bound token of shop/name.
func saStatus(name string, audiences ...string) authenticationv1.TokenReviewStatus {
	return authenticationv1.TokenReviewStatus{
		Authenticated: true,
		Audiences:     audiences,
		User: authenticationv1.UserInfo{
			Username: ServiceAccountUsername("shop", name),
			UID:      "sa-uid-" + name,
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"},
			Extra: map[string]authenticationv1.ExtraValue{
				extraPodName:      {"web-0"},
				extraPodUID:       {"pod-uid-1"},
				extraCredentialID: {"JTI=jti-" + name},
			},
		},
	}
}

func newTestReviewer(t *testing.T, f *fakeReviews, mod func(*ReviewConfig)) (*KubeReviewer, *testClock) {
	t.Helper()
	clk := newTestClock()
	cfg := ReviewConfig{Client: clientsetAPI{f.client()}, Namespace: "shop", PodName: "web-0", Now: clk.Now}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewKubeReviewer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, clk
}

func TestKubeReviewerAuthenticate(t *testing.T) {
	f := &fakeReviews{tokens: map[string]authenticationv1.TokenReviewStatus{
		"tok-viewer":      saStatus("triage-viewer", DefaultAudience),
		"tok-apiserver":   saStatus("triage-viewer", "https://kubernetes.default.svc"),
		"tok-noaudience":  saStatus("triage-viewer"),
		"tok-expired":     {Error: "[invalid bearer token, service account token has expired]"},
		"tok-nouser":      {Authenticated: true, Audiences: []string{DefaultAudience}},
		"tok-human":       {Authenticated: true, Audiences: []string{DefaultAudience}, User: authenticationv1.UserInfo{Username: "alice@example.com", Groups: []string{"oncall"}}},
		"tok-controlchar": {Authenticated: true, Audiences: []string{DefaultAudience}, User: authenticationv1.UserInfo{Username: "evil\nuser"}},
	}}
	r, _ := newTestReviewer(t, f, nil)
	tests := []struct {
		token    string
		wantUser string
		reason   TokenReason
		msgHave  []string
		noCall   bool
	}{
		{token: "tok-viewer", wantUser: "system:serviceaccount:shop:triage-viewer"},
		{token: "tok-human", wantUser: "alice@example.com"},
		{token: "tok-apiserver", reason: ReasonAudience, msgHave: []string{`["https://kubernetes.default.svc"]`, "not triage's (triage.dev)", "--audience triage.dev"}},
		{token: "tok-noaudience", reason: ReasonAudience},
		{token: "tok-expired", reason: ReasonReview, msgHave: []string{"service account token has expired", "kubectl create token"}},
		{token: "tok-unknown", reason: ReasonReview, msgHave: []string{"invalid bearer token"}},
		{token: "tok-nouser", reason: ReasonClaims},
		{token: "tok-controlchar", reason: ReasonClaims},
		{token: "", reason: ReasonMalformed, noCall: true},
		{token: strings.Repeat("x", maxTokenBytes+1), reason: ReasonMalformed, noCall: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.20s", tt.token), func(t *testing.T) {
			before := f.trCalls.Load()
			id, err := r.Authenticate(context.Background(), tt.token)
			if calls := f.trCalls.Load() - before; (calls == 0) != tt.noCall {
				t.Errorf("%d TokenReviews, want a call: %v", calls, !tt.noCall)
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if id.Username != tt.wantUser {
					t.Errorf("username = %q, want %q", id.Username, tt.wantUser)
				}
				return
			}
			var te *TokenError
			if !errors.As(err, &te) || te.Reason != tt.reason {
				t.Fatalf("Authenticate = %v (%+v), want reason %s", err, id, tt.reason)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("%v is not ErrInvalidToken", err)
			}
			for _, s := range tt.msgHave {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err, s)
				}
			}
			if len(tt.token) > 3 && strings.Contains(err.Error(), tt.token) {
				t.Errorf("message echoes the token: %q", err)
			}
		})
	}

	// The review asked for triage's audience, and the identity is complete.
	if len(f.trSeen) == 0 || !slices.Equal(f.trSeen[0].Audiences, []string{DefaultAudience}) || f.trSeen[0].Token != "tok-viewer" {
		t.Fatalf("first TokenReview spec = %+v", f.trSeen)
	}
	id, err := r.Authenticate(context.Background(), "tok-viewer")
	if err != nil {
		t.Fatal(err)
	}
	want := KubeIdentity{
		Username: "system:serviceaccount:shop:triage-viewer", Namespace: "shop", ServiceAccount: "triage-viewer",
		ServiceAccountUID: "sa-uid-triage-viewer", BoundPod: "web-0", BoundPodUID: "pod-uid-1", CredentialID: "jti-triage-viewer",
	}
	got := id
	got.Groups, got.Extra, got.Audience = nil, nil, nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("identity = %+v\nwant       %+v", got, want)
	}
	if len(id.Groups) != 3 || id.Extra[extraPodName][0] != "web-0" || !slices.Equal(id.Audience, []string{DefaultAudience}) {
		t.Errorf("groups %v extra %v audience %v", id.Groups, id.Extra, id.Audience)
	}
}

func TestKubeReviewerTokenCache(t *testing.T) {
	f := &fakeReviews{tokens: map[string]authenticationv1.TokenReviewStatus{
		"good": saStatus("triage-viewer", DefaultAudience),
	}}
	r, clk := newTestReviewer(t, f, nil)
	ctx := context.Background()
	steps := []struct {
		advance   time.Duration
		token     string
		wantOK    bool
		wantCalls int32 // total TokenReviews after the step
	}{
		{0, "good", true, 1},
		{5 * time.Second, "good", true, 1}, // cached
		{6 * time.Second, "good", true, 2}, // 11s after the review: expired
		{0, "bad", false, 3},               // refused: cached for 2s
		{time.Second, "bad", false, 3},     // still cached
		{1500 * time.Millisecond, "bad", false, 4},
		{0, "good", true, 4},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		id, err := r.Authenticate(ctx, s.token)
		if (err == nil) != s.wantOK {
			t.Fatalf("step %d: Authenticate(%q) = %v", i, s.token, err)
		}
		if got := f.trCalls.Load(); got != s.wantCalls {
			t.Fatalf("step %d: %d TokenReviews, want %d", i, got, s.wantCalls)
		}
		if s.wantOK {
			// Callers get copies: changing one does not change the cache.
			id.Groups[0] = "system:masters"
			id.Extra[extraPodName][0] = "other"
		}
	}
	id, _ := r.Authenticate(ctx, "good")
	if id.Groups[0] != "system:serviceaccounts" || id.Extra[extraPodName][0] != "web-0" {
		t.Errorf("cached identity was changed by a caller: %v %v", id.Groups, id.Extra)
	}

	// API errors are not cached.
	f.fail = apierrors.NewForbidden(schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}, "", errors.New("no RBAC"))
	for i := range 2 {
		before := f.trCalls.Load()
		_, err := r.Authenticate(ctx, "other-token")
		if !errors.Is(err, ErrReviewUnavailable) || errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "system:auth-delegator") {
			t.Errorf("call %d: %v, want ErrReviewUnavailable naming system:auth-delegator", i, err)
		}
		if f.trCalls.Load() != before+1 {
			t.Errorf("call %d: error was served from the cache", i)
		}
	}
}

func TestKubeReviewerCacheBounded(t *testing.T) {
	f := &fakeReviews{tokens: map[string]authenticationv1.TokenReviewStatus{}}
	for i := range 5 {
		f.tokens[fmt.Sprint("tok-", i)] = saStatus(fmt.Sprint("sa-", i), DefaultAudience)
	}
	r, _ := newTestReviewer(t, f, func(c *ReviewConfig) { c.MaxCacheEntries = 3 })
	ctx := context.Background()
	auth := func(tok string) {
		t.Helper()
		if _, err := r.Authenticate(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		auth(fmt.Sprint("tok-", i))
	}
	auth("tok-0") // tok-0 is now the most recently used; tok-1 the least
	auth("tok-3") // evicts tok-1
	auth("tok-4") // evicts tok-2
	if n := r.tokens.len(); n != 3 {
		t.Fatalf("cache holds %d entries, want the bound 3", n)
	}
	calls := f.trCalls.Load()
	auth("tok-0")
	if f.trCalls.Load() != calls {
		t.Error("tok-0 (recently used) was evicted")
	}
	auth("tok-1")
	if f.trCalls.Load() != calls+1 {
		t.Error("tok-1 (least recently used) was not evicted")
	}
}

func TestKubeReviewerAuthorize(t *testing.T) {
	f := &fakeReviews{
		tokens: map[string]authenticationv1.TokenReviewStatus{"tok": saStatus("triage-profiler", DefaultAudience)},
		grants: map[string][]string{ServiceAccountUsername("shop", "triage-profiler"): {"view", "profile"}},
	}
	r, _ := newTestReviewer(t, f, nil)
	ctx := context.Background()
	id, err := r.Authenticate(ctx, "tok")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		perm       triagev1.Permission
		want       bool
		reasonHave []string
		noCall     bool
	}{
		{perm: triagev1.Permission_PERMISSION_VIEW, want: true},
		{perm: triagev1.Permission_PERMISSION_PROFILE, want: true, reasonHave: []string{"allowed by RoleBinding"}},
		{perm: triagev1.Permission_PERMISSION_CAPTURE, reasonHave: []string{"may not get pods/capture (API group triage.dev) of pod shop/web-0", "ClusterRole triage:capturer"}},
		{perm: triagev1.Permission_PERMISSION_OPERATE, reasonHave: []string{"pods/operate", "triage:operator"}},
		{perm: triagev1.Permission_PERMISSION_UNSPECIFIED, noCall: true},
		{perm: triagev1.Permission(99), noCall: true},
	}
	for _, tt := range tests {
		t.Run(tt.perm.String(), func(t *testing.T) {
			before := len(f.sarSeen)
			allowed, reason, err := r.Authorize(ctx, id, tt.perm)
			if err != nil {
				t.Fatal(err)
			}
			if allowed != tt.want {
				t.Errorf("allowed = %v, want %v (%s)", allowed, tt.want, reason)
			}
			for _, s := range tt.reasonHave {
				if !strings.Contains(reason, s) {
					t.Errorf("reason %q lacks %q", reason, s)
				}
			}
			if calls := len(f.sarSeen) - before; (calls == 0) != tt.noCall {
				t.Fatalf("%d SubjectAccessReviews, want a call: %v", calls, !tt.noCall)
			}
			if tt.noCall {
				return
			}
			spec := f.sarSeen[len(f.sarSeen)-1]
			sub, _ := PermissionSubresource(tt.perm)
			if spec.User != id.Username || spec.UID != id.ServiceAccountUID || !slices.Equal(spec.Groups, id.Groups) ||
				spec.Extra[extraPodName][0] != "web-0" || spec.ResourceAttributes.Subresource != sub {
				t.Errorf("SubjectAccessReview spec = %+v %+v", spec, spec.ResourceAttributes)
			}
		})
	}
}

func TestKubeReviewerDecisionCache(t *testing.T) {
	user := ServiceAccountUsername("shop", "triage-viewer")
	f := &fakeReviews{grants: map[string][]string{user: {"view"}}}
	r, clk := newTestReviewer(t, f, nil)
	ctx := context.Background()
	id := serviceAccountIdentity("shop", "triage-viewer", "uid-1")
	other := id.clone()
	other.Groups = append(other.Groups, "system:masters") // a different caller
	view, capture := triagev1.Permission_PERMISSION_VIEW, triagev1.Permission_PERMISSION_CAPTURE
	steps := []struct {
		advance   time.Duration
		id        KubeIdentity
		perm      triagev1.Permission
		want      bool
		wantCalls int
	}{
		{0, id, view, true, 1},
		{0, id, capture, false, 2},
		{time.Second, id, view, true, 2},
		{0, id, capture, false, 2},                       // denial cached 2s
		{1500 * time.Millisecond, id, capture, false, 3}, // denial expired
		{0, other, view, true, 4},                        // other groups: other key
		{7 * time.Second, id, view, true, 4},             // 9.5s: still cached
		{time.Second, id, view, true, 5},                 // 10.5s: expired
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		allowed, _, err := r.Authorize(ctx, s.id, s.perm)
		if err != nil || allowed != s.want {
			t.Fatalf("step %d: Authorize = %v, %v; want %v", i, allowed, err, s.want)
		}
		if got := len(f.sarSeen); got != s.wantCalls {
			t.Fatalf("step %d: %d SubjectAccessReviews, want %d", i, got, s.wantCalls)
		}
	}

	f.fail = errors.New("connection refused")
	clk.Advance(time.Minute)
	for range 2 {
		allowed, _, err := r.Authorize(ctx, id, view)
		if allowed || !errors.Is(err, ErrReviewUnavailable) || !strings.Contains(err.Error(), "reach the API server") {
			t.Fatalf("Authorize with the API server down = %v, %v", allowed, err)
		}
	}
}

func TestDecisionKeyDistinct(t *testing.T) {
	base := serviceAccountIdentity("shop", "a", "uid")
	variants := []KubeIdentity{base}
	v := base.clone()
	v.Groups = []string{"system:serviceaccounts", "system:serviceaccounts:shopsystem:authenticated"}
	variants = append(variants, v)
	v = base.clone()
	v.Extra = map[string][]string{"a": {"b"}}
	variants = append(variants, v)
	v = base.clone()
	v.Extra = map[string][]string{"a": {"b", ""}}
	variants = append(variants, v)
	v = base.clone()
	v.ServiceAccountUID = "uid2"
	variants = append(variants, v)
	seen := map[[32]byte]int{}
	for i, id := range variants {
		for _, sub := range []string{"view", "profile"} {
			k := decisionKey(id, sub)
			if j, dup := seen[k]; dup {
				t.Errorf("variant %d/%s has the key of variant %d", i, sub, j)
			}
			seen[k] = i
		}
	}
	if decisionKey(base, "view") != decisionKey(base.clone(), "view") {
		t.Error("equal identities give different keys")
	}
}

func TestNewKubeReviewerErrors(t *testing.T) {
	cs := fake.NewClientset()
	tests := []struct {
		name string
		cfg  ReviewConfig
		want string
	}{
		{"no client", ReviewConfig{Namespace: "a", PodName: "b"}, "no API client"},
		{"no pod", ReviewConfig{Client: clientsetAPI{cs}, Namespace: "a"}, "downward API"},
		{"empty audience", ReviewConfig{Client: clientsetAPI{cs}, Namespace: "a", PodName: "b", Audiences: []string{""}}, "audience is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewKubeReviewer(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewKubeReviewer = %v, want %q", err, tt.want)
			}
		})
	}
}
