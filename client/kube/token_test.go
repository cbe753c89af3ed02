package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// minter answers TokenRequests per namespace: "ok" mints, "forbidden"
// and "missing" refuse, anything else fails with that message.
type minter struct {
	mu       sync.Mutex
	answer   map[string]string
	requests []string // namespace/name of each request
	minted   atomic.Int64
	now      func() time.Time
	t        *testing.T
}

func (m *minter) react(a k8stesting.Action) (bool, runtime.Object, error) {
	ca := a.(k8stesting.CreateActionImpl)
	tr := ca.GetObject().(*authenticationv1.TokenRequest)
	name := ca.Name
	if a.GetSubresource() != "token" {
		m.t.Errorf("subresource = %q, want token", a.GetSubresource())
	}
	if got := tr.Spec.Audiences; len(got) != 1 || got[0] != "triage.test" {
		m.t.Errorf("audiences = %v, want [triage.test]", got)
	}
	if tr.Spec.ExpirationSeconds == nil || *tr.Spec.ExpirationSeconds != 600 {
		m.t.Errorf("expirationSeconds = %v, want 600", tr.Spec.ExpirationSeconds)
	}
	m.mu.Lock()
	m.requests = append(m.requests, a.GetNamespace()+"/"+name)
	answer := m.answer[a.GetNamespace()]
	m.mu.Unlock()
	gr := schema.GroupResource{Resource: "serviceaccounts"}
	switch answer {
	case "ok":
		n := m.minted.Add(1)
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token:               fmt.Sprintf("tok-%s-%s-%d", a.GetNamespace(), name, n),
			ExpirationTimestamp: metav1.NewTime(m.now().Add(600 * time.Second)),
		}}, nil
	case "forbidden":
		return true, nil, apierrors.NewForbidden(gr, name, errors.New("RBAC"))
	case "missing":
		return true, nil, apierrors.NewNotFound(gr, name)
	}
	return true, nil, errors.New(answer)
}

func newMinter(t *testing.T, answers map[string]string) (*TokenSource, *minter, *time.Time) {
	clock := time.Unix(1_800_000_000, 0)
	m := &minter{answer: answers, t: t, now: func() time.Time { return clock }}
	cs := fake.NewClientset()
	cs.PrependReactor("create", "serviceaccounts", m.react)
	ts := NewTokenSource(cs, "", "triage.test")
	ts.now = func() time.Time { return clock }
	return ts, m, &clock
}

func TestTokenFallbackAndErrors(t *testing.T) {
	const ask = "ask your platform team to bind you to the Role triage-profiler-minter"
	tests := []struct {
		name         string
		answers      map[string]string
		podNS        string
		wantToken    string
		wantErr      string
		wantRequests []string
	}{
		{"tier namespace", map[string]string{"triage-system": "ok", "shop": "ok"}, "shop",
			"tok-triage-system-triage-profiler-1", "", []string{"triage-system/triage-profiler"}},
		{"forbidden in tier namespace, minted in the pod's", map[string]string{"triage-system": "forbidden", "shop": "ok"}, "shop",
			"tok-shop-triage-profiler-1", "", []string{"triage-system/triage-profiler", "shop/triage-profiler"}},
		{"missing in tier namespace, minted in the pod's", map[string]string{"triage-system": "missing", "shop": "ok"}, "shop",
			"tok-shop-triage-profiler-1", "", []string{"triage-system/triage-profiler", "shop/triage-profiler"}},
		{"forbidden in both", map[string]string{"triage-system": "forbidden", "shop": "forbidden"}, "shop", "",
			"you may not create serviceaccounts/token for triage-profiler in triage-system (nor in shop): " + ask,
			[]string{"triage-system/triage-profiler", "shop/triage-profiler"}},
		{"forbidden, then missing", map[string]string{"triage-system": "forbidden", "shop": "missing"}, "shop", "",
			"you may not create serviceaccounts/token for triage-profiler in triage-system (and it does not exist in shop): " + ask, nil},
		{"missing, then forbidden", map[string]string{"triage-system": "missing", "shop": "forbidden"}, "shop", "",
			"ServiceAccount triage-profiler does not exist in triage-system, and you may not create serviceaccounts/token for it in shop", nil},
		{"missing in both", map[string]string{"triage-system": "missing", "shop": "missing"}, "shop", "",
			"exists neither in triage-system nor in shop", nil},
		{"pod in the tier namespace: one try", map[string]string{"triage-system": "forbidden"}, "triage-system", "",
			"you may not create serviceaccounts/token for triage-profiler in triage-system: " + ask, []string{"triage-system/triage-profiler"}},
		{"other errors do not fall back", map[string]string{"triage-system": "etcdserver: request timed out", "shop": "ok"}, "shop", "",
			"mint a token for triage-profiler in triage-system: etcdserver: request timed out", []string{"triage-system/triage-profiler"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, m, _ := newMinter(t, tt.answers)
			tok, err := ts.Token(context.Background(), "profiler", tt.podNS)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Token = %q, %v; want an error containing %q", tok, err, tt.wantErr)
				}
			} else if err != nil || tok != tt.wantToken {
				t.Fatalf("Token = %q, %v; want %q", tok, err, tt.wantToken)
			}
			if tt.wantRequests != nil && strings.Join(m.requests, ",") != strings.Join(tt.wantRequests, ",") {
				t.Errorf("requests = %v, want %v", m.requests, tt.wantRequests)
			}
		})
	}
}

func TestTokenCache(t *testing.T) {
	ts, m, clock := newMinter(t, map[string]string{"triage-system": "ok"})
	ctx := context.Background()
	get := func(tier string) string {
		t.Helper()
		tok, err := ts.Token(ctx, tier, "shop")
		if err != nil {
			t.Fatalf("Token(%s): %v", tier, err)
		}
		return tok
	}
	first := get("viewer")
	// Concurrent callers share the cached token: one request.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if tok, err := ts.Token(ctx, "viewer", "shop"); err != nil || tok != first {
				t.Errorf("concurrent Token = %q, %v; want the cached token", tok, err)
			}
		})
	}
	wg.Wait()
	if n := m.minted.Load(); n != 1 {
		t.Fatalf("minted %d tokens for one tier, want 1", n)
	}
	if other := get("operator"); other == first {
		t.Errorf("operator got the viewer's token")
	}
	*clock = clock.Add(TokenExpiration - tokenRefreshMargin - time.Second)
	if got := get("viewer"); got != first {
		t.Errorf("token renewed %s before its refresh time", time.Second)
	}
	*clock = clock.Add(2 * time.Second)
	if got := get("viewer"); got == first {
		t.Errorf("token not renewed within a minute of its expiry")
	}
	if n := m.minted.Load(); n != 3 {
		t.Errorf("minted %d tokens, want 3 (viewer, operator, viewer renewed)", n)
	}
}

func TestTokenRefusalIsCached(t *testing.T) {
	ts, m, clock := newMinter(t, map[string]string{"triage-system": "forbidden", "shop": "ok"})
	for range 5 {
		if _, err := ts.Token(context.Background(), "viewer", "shop"); err != nil {
			t.Fatal(err)
		}
	}
	if len(m.requests) != 2 {
		t.Fatalf("requests = %v, want one refusal and one mint for five calls", m.requests)
	}
	*clock = clock.Add(negativeTTL + time.Second)
	m.answer["triage-system"] = "ok"
	tok, err := ts.Token(context.Background(), "viewer", "shop")
	if err != nil || !strings.HasPrefix(tok, "tok-triage-system-") {
		t.Fatalf("after the refusal expired, Token = %q, %v; want one from triage-system", tok, err)
	}
}

func TestTokenUnknownTier(t *testing.T) {
	ts, m, _ := newMinter(t, map[string]string{"triage-system": "ok"})
	_, err := ts.Token(context.Background(), "root", "shop")
	if err == nil || !strings.Contains(err.Error(), "viewer, profiler, capturer, operator") {
		t.Fatalf("Token(root) = %v, want an error listing the tiers", err)
	}
	if len(m.requests) != 0 {
		t.Errorf("an unknown tier reached the API: %v", m.requests)
	}
}
