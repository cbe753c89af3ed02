package auth

import (
	"fmt"
	"strings"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// Role is a named set of permissions. Roles are cumulative: each one grants
// everything the one before it grants.
type Role string

// The roles, least privileged first.
const (
	// Viewer reads state: explain, process, goroutines, runtime stats, Envoy reads.
	Viewer Role = "viewer"
	// Profiler adds profiles and execution traces.
	Profiler Role = "profiler"
	// Capturer adds packet capture and Envoy tap.
	Capturer Role = "capturer"
	// Operator adds mutations: Envoy log levels, health-check fail/ok, GC settings.
	Operator Role = "operator"
)

// allRoles lists the roles in order of privilege; a role grants the
// permission at its own index and all those before it.
var allRoles = []Role{Viewer, Profiler, Capturer, Operator}

// rolePermission is the one permission each role adds to the role before it.
var rolePermission = map[Role]triagev1.Permission{
	Viewer:   triagev1.Permission_PERMISSION_VIEW,
	Profiler: triagev1.Permission_PERMISSION_PROFILE,
	Capturer: triagev1.Permission_PERMISSION_CAPTURE,
	Operator: triagev1.Permission_PERMISSION_OPERATE,
}

// AllRoles returns every role, least privileged first.
func AllRoles() []Role { return append([]Role(nil), allRoles...) }

// roleNames is "viewer, profiler, capturer, operator", for error messages.
func roleNames() string {
	names := make([]string, len(allRoles))
	for i, r := range allRoles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// rank is the role's position in allRoles, or -1 for an unknown role.
func (r Role) rank() int {
	for i, a := range allRoles {
		if a == r {
			return i
		}
	}
	return -1
}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return r.rank() >= 0 }

// String returns the role's name.
func (r Role) String() string { return string(r) }

// Permissions returns the permissions r grants, in enum order. An unknown
// role grants nothing.
func (r Role) Permissions() []triagev1.Permission {
	n := r.rank()
	if n < 0 {
		return nil
	}
	perms := make([]triagev1.Permission, 0, n+1)
	for _, a := range allRoles[:n+1] {
		perms = append(perms, rolePermission[a])
	}
	return perms
}

// Grants reports whether any of roles grants p. PERMISSION_UNSPECIFIED, and
// any value outside the enum, is never granted.
func Grants(roles []Role, p triagev1.Permission) bool {
	if p == triagev1.Permission_PERMISSION_UNSPECIFIED {
		return false
	}
	for _, r := range roles {
		for _, q := range r.Permissions() {
			if q == p {
				return true
			}
		}
	}
	return false
}

// MinimalRole returns the least privileged role that grants p, for messages
// such as "requires role capturer". ok is false for PERMISSION_UNSPECIFIED
// and unknown values.
func MinimalRole(p triagev1.Permission) (r Role, ok bool) {
	for _, a := range allRoles {
		if rolePermission[a] == p {
			return a, true
		}
	}
	return "", false
}

// ParseRole parses a role name. Names are exact and lower case.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("unknown role %q (allowed: %s)", s, roleNames())
	}
	return r, nil
}
