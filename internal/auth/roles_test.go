package auth

import (
	"slices"
	"testing"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func TestRolePermissionMatrix(t *testing.T) {
	const (
		U = triagev1.Permission_PERMISSION_UNSPECIFIED
		V = triagev1.Permission_PERMISSION_VIEW
		P = triagev1.Permission_PERMISSION_PROFILE
		C = triagev1.Permission_PERMISSION_CAPTURE
		O = triagev1.Permission_PERMISSION_OPERATE
	)
	perms := []triagev1.Permission{U, V, P, C, O, triagev1.Permission(99)}
	tests := []struct {
		role Role
		want map[triagev1.Permission]bool
	}{
		{Viewer, map[triagev1.Permission]bool{V: true}},
		{Profiler, map[triagev1.Permission]bool{V: true, P: true}},
		{Capturer, map[triagev1.Permission]bool{V: true, P: true, C: true}},
		{Operator, map[triagev1.Permission]bool{V: true, P: true, C: true, O: true}},
		{Role("admin"), map[triagev1.Permission]bool{}},
		{Role(""), map[triagev1.Permission]bool{}},
	}
	for _, tt := range tests {
		for _, p := range perms {
			if got := Grants([]Role{tt.role}, p); got != tt.want[p] {
				t.Errorf("Grants([%s], %s) = %v, want %v", tt.role, p, got, tt.want[p])
			}
			if got := slices.Contains(tt.role.Permissions(), p); got != tt.want[p] {
				t.Errorf("%s.Permissions() contains %s = %v, want %v", tt.role, p, got, tt.want[p])
			}
		}
		if got := len(tt.role.Permissions()); got != len(tt.want) {
			t.Errorf("%s.Permissions() has %d entries, want %d", tt.role, got, len(tt.want))
		}
	}
	if Grants(nil, V) {
		t.Error("no roles granted VIEW")
	}
	if !Grants([]Role{"bogus", Viewer}, V) {
		t.Error("an unknown role hid a valid one")
	}
	if Grants(AllRoles(), U) {
		t.Error("UNSPECIFIED was granted")
	}
}

func TestMinimalRole(t *testing.T) {
	for p, want := range map[triagev1.Permission]Role{
		triagev1.Permission_PERMISSION_VIEW:    Viewer,
		triagev1.Permission_PERMISSION_PROFILE: Profiler,
		triagev1.Permission_PERMISSION_CAPTURE: Capturer,
		triagev1.Permission_PERMISSION_OPERATE: Operator,
	} {
		if got, ok := MinimalRole(p); !ok || got != want {
			t.Errorf("MinimalRole(%s) = %q, %v; want %q", p, got, ok, want)
		}
	}
	if r, ok := MinimalRole(triagev1.Permission_PERMISSION_UNSPECIFIED); ok {
		t.Errorf("MinimalRole(UNSPECIFIED) = %q, want none", r)
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range AllRoles() {
		got, err := ParseRole(string(r))
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "Viewer", "admin", " viewer"} {
		_, err := ParseRole(s)
		want := `unknown role "` + s + `" (allowed: viewer, profiler, capturer, operator)`
		if err == nil || err.Error() != want {
			t.Errorf("ParseRole(%q) error = %v, want %q", s, err, want)
		}
	}
}
