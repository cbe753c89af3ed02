package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultAudience is triage's own token audience. A ServiceAccount token
// minted for it (kubectl create token NAME --audience triage.dev) is
// accepted by triage and refused by the API server, and a token minted for
// the API server is refused by triage.
const DefaultAudience = "triage.dev"

// serviceAccountPrefix starts the username of every ServiceAccount.
const serviceAccountPrefix = "system:serviceaccount:"

// KubeIdentity is a Kubernetes identity authenticated from a ServiceAccount
// token, either offline (JWKSVerifier) or by TokenReview (KubeReviewer).
type KubeIdentity struct {
	// Username is "system:serviceaccount:NAMESPACE:NAME" for a
	// ServiceAccount; it is the identity the policy matches.
	Username string
	// Namespace and ServiceAccount are the ServiceAccount's namespace and
	// name; empty for a user that is not a ServiceAccount (review mode only).
	Namespace      string
	ServiceAccount string
	// ServiceAccountUID is the ServiceAccount object's UID.
	ServiceAccountUID string
	// Groups are system:serviceaccounts, system:serviceaccounts:NAMESPACE
	// and system:authenticated for a ServiceAccount (review mode: what the
	// API server returned).
	Groups []string
	// BoundPod and BoundPodUID name the pod the token is bound to, if any.
	BoundPod    string
	BoundPodUID string
	// BoundNode and BoundNodeUID name the node the token is bound to, if any.
	BoundNode    string
	BoundNodeUID string
	// CredentialID is the token's jti ("JTI=..."), when it has one.
	CredentialID string
	// Extra is the user's extra information as Kubernetes computes it
	// (authentication.kubernetes.io/pod-name, .../pod-uid, .../node-name,
	// .../credential-id), passed on in SubjectAccessReviews.
	Extra map[string][]string
	// Expiry is when the token expires (zero in review mode: TokenReview
	// does not report it).
	Expiry time.Time
	// Audience is the token's audiences (review mode: the ones the API
	// server confirmed).
	Audience []string
}

// Identity returns the identity the policy matches: the username.
func (id KubeIdentity) Identity() string { return id.Username }

// The extra keys Kubernetes adds to ServiceAccount users.
const (
	extraPodName      = "authentication.kubernetes.io/pod-name"
	extraPodUID       = "authentication.kubernetes.io/pod-uid"
	extraNodeName     = "authentication.kubernetes.io/node-name"
	extraNodeUID      = "authentication.kubernetes.io/node-uid"
	extraCredentialID = "authentication.kubernetes.io/credential-id"
)

// serviceAccountIdentity builds the identity of ServiceAccount ns/name.
func serviceAccountIdentity(ns, name, uid string) KubeIdentity {
	return KubeIdentity{
		Username:          ServiceAccountUsername(ns, name),
		Namespace:         ns,
		ServiceAccount:    name,
		ServiceAccountUID: uid,
		Groups:            []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
}

// ServiceAccountUsername is the Kubernetes username of ServiceAccount
// namespace/name: "system:serviceaccount:NAMESPACE:NAME".
func ServiceAccountUsername(namespace, name string) string {
	return serviceAccountPrefix + namespace + ":" + name
}

// splitServiceAccountUsername parses "system:serviceaccount:NS:NAME".
func splitServiceAccountUsername(user string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(user, serviceAccountPrefix)
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, ":")
	if !ok || checkKubeName(ns) != nil || checkKubeName(name) != nil {
		return "", "", false
	}
	return ns, name, true
}

// errBadName is returned by checkKubeName.
var errBadName = errors.New("not a Kubernetes object name")

// checkKubeName checks that s can be a namespace or ServiceAccount name: a
// DNS subdomain (lower-case letters, digits, '-' and '.', at most 253
// characters). It guards the username against separators (':') and control
// characters, whatever signed the token.
func checkKubeName(s string) error {
	if s == "" || len(s) > 253 {
		return errBadName
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return errBadName
		}
	}
	return nil
}

// quoteShort quotes s for an error message, truncated to 64 bytes and with
// non-printable characters escaped, so hostile input cannot flood or forge a
// log line.
func quoteShort(s string) string { return quoteBounded(s, 64) }

// quoteBounded quotes s, truncated to max bytes.
func quoteBounded(s string, max int) string {
	if len(s) > max {
		return fmt.Sprintf("%q...", strings.ToValidUTF8(s[:max], ""))
	}
	return fmt.Sprintf("%q", s)
}
