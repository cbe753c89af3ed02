package auth

import (
	"errors"
	"fmt"
	"strings"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// tierPrefix starts the name of every tier ServiceAccount.
const tierPrefix = "triage-"

// TierServiceAccount is the name of the ServiceAccount whose tokens carry
// role in Kubernetes: "triage-viewer", "triage-profiler", "triage-capturer",
// "triage-operator". RBAC decides who may mint its tokens (create
// serviceaccounts/token on it), so the CLI, the manifests and
// KubeTierPolicy share these names. It is "" for an unknown role.
func TierServiceAccount(role Role) string {
	if !role.Valid() {
		return ""
	}
	return tierPrefix + string(role)
}

// TierUsername is the Kubernetes username of role's tier ServiceAccount in
// namespace: "system:serviceaccount:NAMESPACE:triage-ROLE".
func TierUsername(namespace string, role Role) string {
	return ServiceAccountUsername(namespace, TierServiceAccount(role))
}

// KubeTierPolicy returns the policy that grants each tier ServiceAccount of
// the given namespaces its role: system:serviceaccount:NS:triage-viewer is
// a viewer, ...:triage-profiler a profiler, ...:triage-capturer a capturer
// and ...:triage-operator an operator. Pass the namespace triage is
// installed in and the pod's own, e.g. ["triage-system", "shop"]. Empty and
// duplicate namespaces are skipped; namespaces that are not Kubernetes
// names are skipped too (they could not hold a ServiceAccount). With no
// namespace left the policy is empty and denies everyone.
func KubeTierPolicy(tierNamespaces []string) *Policy {
	var nss []string
	for _, ns := range tierNamespaces {
		if checkKubeName(ns) != nil || contains(nss, ns) {
			continue
		}
		nss = append(nss, ns)
	}
	p := &Policy{name: "kubernetes tier ServiceAccounts (" + strings.Join(nss, ", ") + ")"}
	if len(nss) == 0 {
		return p
	}
	for _, r := range allRoles {
		ids := make([]string, len(nss))
		for i, ns := range nss {
			ids[i] = TierUsername(ns, r)
		}
		p.bindings = append(p.bindings, Binding{Identities: ids, Roles: []Role{r}})
	}
	return p
}

// NewPolicy builds a policy from bindings, checked as ParsePolicy checks a
// file: every binding needs identities and valid roles, and identities must
// be non-empty, without surrounding spaces or control characters. name
// names the policy in messages. The bindings are copied.
func NewPolicy(name string, bindings []Binding) (*Policy, error) {
	p := &Policy{name: name}
	var errs []error
	for i, b := range bindings {
		if len(b.Identities) == 0 {
			errs = append(errs, fmt.Errorf("%s: binding %d has no identities", name, i+1))
		}
		if len(b.Roles) == 0 {
			errs = append(errs, fmt.Errorf("%s: binding %d has no roles (allowed: %s)", name, i+1, roleNames()))
		}
		for _, id := range b.Identities {
			if msg := checkIdentity(id); msg != "" {
				errs = append(errs, fmt.Errorf("%s: binding %d: identity %q %s", name, i+1, id, msg))
			}
		}
		for _, r := range b.Roles {
			if !r.Valid() {
				errs = append(errs, fmt.Errorf("%s: binding %d: unknown role %q (allowed: %s)", name, i+1, r, roleNames()))
			}
		}
		p.bindings = append(p.bindings, Binding{
			Identities: append([]string(nil), b.Identities...),
			Roles:      append([]Role(nil), b.Roles...),
			Line:       b.Line,
		})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// PermissionSubresource is the subresource of pods in API group triage.dev
// that a SubjectAccessReview checks for p: "view", "profile", "capture" or
// "operate" (the permission's lower-case name, as in audit records). ok is
// false for PERMISSION_UNSPECIFIED and unknown values, which are never
// granted.
func PermissionSubresource(p triagev1.Permission) (sub string, ok bool) {
	if _, ok := MinimalRole(p); !ok {
		return "", false
	}
	return strings.ToLower(strings.TrimPrefix(p.String(), "PERMISSION_")), true
}
