package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/triage-sh/triage/internal/auth"
)

// Tiers are the roles a command may need, least to most privileged
// (internal/auth's roles); the tier ServiceAccount of tier t is
// [ServiceAccount](t).
var Tiers = tierNames()

func tierNames() []string {
	roles := auth.AllRoles()
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return names
}

// TokenExpiration is the lifetime asked of minted tokens: the API's minimum.
const TokenExpiration = 600 * time.Second

// tokenRefreshMargin is how long before expiry a cached token is renewed.
const tokenRefreshMargin = time.Minute

// negativeTTL is how long a namespace that refused a tier (no such
// ServiceAccount, or Forbidden) is not asked again, so a fleet command
// does not repeat the same failing request for every pod.
const negativeTTL = time.Minute

// TokenSource mints bearer tokens for the tier ServiceAccounts with the
// TokenRequest API, as the user, and caches them per (namespace, tier)
// until a minute before they expire. It is safe for concurrent use; tokens
// never appear in its errors.
type TokenSource struct {
	cs            kubernetes.Interface
	tierNamespace string
	audience      string
	now           func() time.Time

	mu      sync.Mutex
	entries map[tokenKey]*tokenEntry
}

type tokenKey struct{ namespace, tier string }

// tokenEntry is one cached mint; mu serialises minting for its key.
type tokenEntry struct {
	mu      sync.Mutex
	token   string
	expires time.Time
	err     error // a NotFound or Forbidden answer, kept until expires
}

// NewTokenSource mints in tierNamespace first, then in the pod's
// namespace, with the given audience.
func NewTokenSource(cs kubernetes.Interface, tierNamespace, audience string) *TokenSource {
	return &TokenSource{
		cs:            cs,
		tierNamespace: orString(tierNamespace, DefaultTierNamespace),
		audience:      orString(audience, DefaultAudience),
		now:           time.Now,
		entries:       map[tokenKey]*tokenEntry{},
	}
}

// ServiceAccount is the tier's ServiceAccount name, "triage-" + tier, the
// name the sidecar's tier policy and the manifests use ("" for an unknown
// tier).
func ServiceAccount(tier string) string { return auth.TierServiceAccount(auth.Role(tier)) }

// MinterRole is the Role that lets its subjects mint the tier's tokens.
func MinterRole(tier string) string { return "triage-" + tier + "-minter" }

// Token returns a token for tier, usable on a pod in podNamespace: minted
// in the tier namespace, or, if that ServiceAccount is missing or the user
// may not mint it there, in podNamespace.
func (s *TokenSource) Token(ctx context.Context, tier, podNamespace string) (string, error) {
	if !validTier(tier) {
		return "", fmt.Errorf("unknown tier %q: use one of %s", tier, strings.Join(Tiers, ", "))
	}
	tok, firstErr := s.mint(ctx, s.tierNamespace, tier)
	if firstErr == nil {
		return tok, nil
	}
	if !refusal(firstErr) || podNamespace == "" || podNamespace == s.tierNamespace {
		return "", s.explain(tier, firstErr, "", nil)
	}
	tok, secondErr := s.mint(ctx, podNamespace, tier)
	if secondErr == nil {
		return tok, nil
	}
	if !refusal(secondErr) {
		return "", fmt.Errorf("mint a token for %s in %s: %w", ServiceAccount(tier), podNamespace, secondErr)
	}
	return "", s.explain(tier, firstErr, podNamespace, secondErr)
}

// refusal reports whether err means "not in this namespace": the
// ServiceAccount is missing or the user may not mint its tokens.
func refusal(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err)
}

// explain builds the error for a tier that could not be minted in the
// tier namespace (err1) nor, if ns2 is set, in ns2 (err2).
func (s *TokenSource) explain(tier string, err1 error, ns2 string, err2 error) error {
	sa := ServiceAccount(tier)
	if !refusal(err1) {
		return fmt.Errorf("mint a token for %s in %s: %w", sa, s.tierNamespace, err1)
	}
	ask := fmt.Sprintf("ask your platform team to bind you to the Role %s", MinterRole(tier))
	forbidden1 := apierrors.IsForbidden(err1)
	if ns2 == "" {
		if forbidden1 {
			return fmt.Errorf("you may not create serviceaccounts/token for %s in %s: %s", sa, s.tierNamespace, ask)
		}
		return fmt.Errorf("ServiceAccount %s does not exist in %s: install triage's tier ServiceAccounts there, or give --tier-namespace", sa, s.tierNamespace)
	}
	forbidden2 := apierrors.IsForbidden(err2)
	switch {
	case forbidden1 && forbidden2:
		return fmt.Errorf("you may not create serviceaccounts/token for %s in %s (nor in %s): %s", sa, s.tierNamespace, ns2, ask)
	case forbidden1:
		return fmt.Errorf("you may not create serviceaccounts/token for %s in %s (and it does not exist in %s): %s", sa, s.tierNamespace, ns2, ask)
	case forbidden2:
		return fmt.Errorf("ServiceAccount %s does not exist in %s, and you may not create serviceaccounts/token for it in %s: give --tier-namespace, or %s", sa, s.tierNamespace, ns2, ask)
	}
	return fmt.Errorf("ServiceAccount %s exists neither in %s nor in %s: install triage's tier ServiceAccounts, or give --tier-namespace", sa, s.tierNamespace, ns2)
}

// mint returns the cached token for (ns, tier) or requests a new one.
func (s *TokenSource) mint(ctx context.Context, ns, tier string) (string, error) {
	s.mu.Lock()
	e := s.entries[tokenKey{ns, tier}]
	if e == nil {
		e = &tokenEntry{}
		s.entries[tokenKey{ns, tier}] = e
	}
	s.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := s.now()
	if now.Before(e.expires) {
		return e.token, e.err
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{s.audience},
		ExpirationSeconds: new(int64(TokenExpiration / time.Second)),
	}}
	resp, err := s.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, ServiceAccount(tier), req, metav1.CreateOptions{})
	if err != nil {
		if refusal(err) {
			e.token, e.err, e.expires = "", err, now.Add(negativeTTL)
		}
		return "", err
	}
	tok := resp.Status.Token
	if tok == "" {
		return "", errors.New("the API server returned an empty token")
	}
	exp := resp.Status.ExpirationTimestamp.Time
	if exp.IsZero() {
		exp = now.Add(TokenExpiration)
	}
	e.token, e.err, e.expires = tok, nil, exp.Add(-tokenRefreshMargin)
	return tok, nil
}

func validTier(tier string) bool { return auth.Role(tier).Valid() }
