package cluster

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	// TriageNamespace is where triage's tier ServiceAccounts live.
	TriageNamespace = "triage-system"
	// TriageAudience is the audience of the ServiceAccount tokens triage's
	// sidecars accept; the API server does not (--api-audiences is the
	// issuer alone).
	TriageAudience = "triage.dev"
)

// TierServiceAccounts are the ServiceAccounts whose tokens carry triage's
// roles (DESIGN.md, "Security model"), least privileged first.
var TierServiceAccounts = []string{"triage-viewer", "triage-profiler", "triage-capturer", "triage-operator"}

// CreateServiceAccounts creates namespace (unless it exists) and the named
// ServiceAccounts in it (TierServiceAccounts if none are named); existing
// ones are left alone.
func CreateServiceAccounts(ctx context.Context, client kubernetes.Interface, namespace string, names ...string) error {
	if len(names) == 0 {
		names = TierServiceAccounts
	}
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	for _, name := range names {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
		if _, err := client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating ServiceAccount %s/%s: %w", namespace, name, err)
		}
	}
	return nil
}

// MintToken asks the API server (TokenRequest, as client's user) for a token
// of ServiceAccount namespace/name for the audiences (the API server's own
// when none), valid for ttl (the API server's minimum is 10 minutes).
func MintToken(ctx context.Context, client kubernetes.Interface, namespace, name string, ttl time.Duration, audiences ...string) (*authenticationv1.TokenRequest, error) {
	secs := int64(ttl / time.Second)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         audiences,
		ExpirationSeconds: &secs,
	}}
	out, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, tr, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("minting a token for ServiceAccount %s/%s (audiences %q): %w", namespace, name, audiences, err)
	}
	return out, nil
}

// GrantTokenMinting lets group mint tokens of ServiceAccount namespace/name
// and no other: a Role NAME-minter allowing create on serviceaccounts/token
// for that resourceName, and a RoleBinding of the same name to group.
func GrantTokenMinting(ctx context.Context, client kubernetes.Interface, namespace, name, group string) error {
	return GrantRole(ctx, client, namespace, name+"-minter", rbacv1.GroupKind, group, rbacv1.PolicyRule{
		APIGroups:     []string{""},
		Resources:     []string{"serviceaccounts/token"},
		ResourceNames: []string{name},
		Verbs:         []string{"create"},
	})
}

// GrantPortForward lets subject (a user or group, by kind rbacv1.UserKind or
// rbacv1.GroupKind) port-forward to pods in namespace: get pods and create
// pods/portforward, as kubectl port-forward needs.
func GrantPortForward(ctx context.Context, client kubernetes.Interface, namespace, kind, subject string) error {
	return GrantRole(ctx, client, namespace, "port-forward-"+subject, kind, subject,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create", "get"}},
	)
}

// GrantRole creates Role name in namespace with rules and a RoleBinding of
// the same name to subject (a user or group, by kind rbacv1.UserKind or
// rbacv1.GroupKind). Either object that exists already is left alone.
func GrantRole(ctx context.Context, client kubernetes.Interface, namespace, name, kind, subject string, rules ...rbacv1.PolicyRule) error {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Rules: rules}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: kind, Name: subject}},
	}
	if _, err := client.RbacV1().Roles(role.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Role %s/%s: %w", role.Namespace, role.Name, err)
	}
	if _, err := client.RbacV1().RoleBindings(binding.Namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating RoleBinding %s/%s: %w", binding.Namespace, binding.Name, err)
	}
	return nil
}
