package auth

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes/scheme"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func TestTierServiceAccount(t *testing.T) {
	tests := []struct {
		role Role
		want string
	}{
		{Viewer, "triage-viewer"},
		{Profiler, "triage-profiler"},
		{Capturer, "triage-capturer"},
		{Operator, "triage-operator"},
		{Role("admin"), ""},
		{Role(""), ""},
	}
	for _, tt := range tests {
		if got := TierServiceAccount(tt.role); got != tt.want {
			t.Errorf("TierServiceAccount(%q) = %q, want %q", tt.role, got, tt.want)
		}
	}
	if got := TierUsername("shop", Capturer); got != "system:serviceaccount:shop:triage-capturer" {
		t.Errorf("TierUsername = %q", got)
	}
}

func TestKubeTierPolicy(t *testing.T) {
	p := KubeTierPolicy([]string{"triage-system", "shop", "", "shop", "Bad:NS"})
	if p.Bindings() != 4 {
		t.Fatalf("bindings = %d, want one per role", p.Bindings())
	}
	tests := []struct {
		identity string
		want     []Role
	}{
		{"system:serviceaccount:triage-system:triage-viewer", []Role{Viewer}},
		{"system:serviceaccount:shop:triage-viewer", []Role{Viewer}},
		{"system:serviceaccount:shop:triage-profiler", []Role{Profiler}},
		{"system:serviceaccount:triage-system:triage-capturer", []Role{Capturer}},
		{"system:serviceaccount:shop:triage-operator", []Role{Operator}},
		{"system:serviceaccount:other:triage-operator", nil},  // namespace not listed
		{"system:serviceaccount:shop:default", nil},           // not a tier
		{"system:serviceaccount:shop:triage-admin", nil},      // no such tier
		{"system:serviceaccount:shop:triage-viewer:x", nil},   // not exact
		{"system:serviceaccount:Bad:NS:triage-operator", nil}, // invalid namespace skipped
		{"triage-viewer", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := p.Roles(tt.identity); !slices.Equal(got, tt.want) {
			t.Errorf("Roles(%q) = %v, want %v", tt.identity, got, tt.want)
		}
	}
	// Roles are cumulative through Grants.
	op := "system:serviceaccount:shop:triage-operator"
	for _, perm := range []triagev1.Permission{triagev1.Permission_PERMISSION_VIEW, triagev1.Permission_PERMISSION_OPERATE} {
		if !p.Allows(op, perm) {
			t.Errorf("operator not allowed %v", perm)
		}
	}
	if p.Allows("system:serviceaccount:shop:triage-viewer", triagev1.Permission_PERMISSION_PROFILE) {
		t.Error("viewer allowed to profile")
	}
	if !strings.Contains(p.Name(), "triage-system, shop") {
		t.Errorf("name = %q", p.Name())
	}

	empty := KubeTierPolicy(nil)
	if !empty.Empty() || empty.Roles("system:serviceaccount:shop:triage-viewer") != nil {
		t.Error("policy without namespaces grants something")
	}
}

func TestNewPolicy(t *testing.T) {
	p, err := NewPolicy("test", []Binding{{Identities: []string{"a", "spiffe://x/*"}, Roles: []Role{Profiler}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Roles("spiffe://x/y"); !slices.Equal(got, []Role{Profiler}) {
		t.Errorf("Roles = %v", got)
	}
	bad := []struct {
		name string
		b    Binding
		want string
	}{
		{"no identities", Binding{Roles: []Role{Viewer}}, "no identities"},
		{"no roles", Binding{Identities: []string{"a"}}, "no roles"},
		{"unknown role", Binding{Identities: []string{"a"}, Roles: []Role{"root"}}, `unknown role "root"`},
		{"empty identity", Binding{Identities: []string{""}, Roles: []Role{Viewer}}, "is empty"},
		{"control character", Binding{Identities: []string{"a\nb"}, Roles: []Role{Viewer}}, "control character"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPolicy("test", []Binding{tt.b})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewPolicy = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPermissionSubresource(t *testing.T) {
	tests := []struct {
		p    triagev1.Permission
		want string
		ok   bool
	}{
		{triagev1.Permission_PERMISSION_VIEW, "view", true},
		{triagev1.Permission_PERMISSION_PROFILE, "profile", true},
		{triagev1.Permission_PERMISSION_CAPTURE, "capture", true},
		{triagev1.Permission_PERMISSION_OPERATE, "operate", true},
		{triagev1.Permission_PERMISSION_UNSPECIFIED, "", false},
		{triagev1.Permission(42), "", false},
	}
	for _, tt := range tests {
		got, ok := PermissionSubresource(tt.p)
		if got != tt.want || ok != tt.ok {
			t.Errorf("PermissionSubresource(%v) = %q, %v; want %q, %v", tt.p, got, ok, tt.want, tt.ok)
		}
	}
}

// TestKubeRBACExample checks that testdata/kube-rbac.yaml, which the
// documentation points at, is valid RBAC that matches the code: the
// auth-delegator binding, and one ClusterRole per role granting get on
// exactly the subresources of the role's permissions.
func TestKubeRBACExample(t *testing.T) {
	data, err := os.ReadFile("testdata/kube-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := scheme.Codecs.UniversalDeserializer()
	clusterRoles := map[string]*rbacv1.ClusterRole{}
	delegator := false
	for i, doc := range strings.Split(string(data), "\n---\n") {
		obj, _, err := dec.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			clusterRoles[o.Name] = o
		case *rbacv1.ClusterRoleBinding:
			if o.RoleRef.Kind == "ClusterRole" && o.RoleRef.Name == "system:auth-delegator" && len(o.Subjects) > 0 && o.Subjects[0].Kind == "ServiceAccount" {
				delegator = true
			}
		}
	}
	if !delegator {
		t.Error("no ClusterRoleBinding of a ServiceAccount to system:auth-delegator")
	}
	for _, r := range AllRoles() {
		cr := clusterRoles["triage:"+string(r)]
		if cr == nil {
			t.Errorf("no ClusterRole triage:%s", r)
			continue
		}
		var want, got []string
		for _, p := range r.Permissions() {
			sub, _ := PermissionSubresource(p)
			want = append(want, "pods/"+sub)
		}
		for _, rule := range cr.Rules {
			if !slices.Equal(rule.APIGroups, []string{KubeAPIGroup}) || !slices.Equal(rule.Verbs, []string{"get"}) {
				t.Errorf("ClusterRole %s rule %+v: want apiGroups [%s] and verbs [get]", cr.Name, rule, KubeAPIGroup)
			}
			got = append(got, rule.Resources...)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ClusterRole %s grants %v, want %v", cr.Name, got, want)
		}
	}
}
