package main

import (
	"fmt"
	"strings"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// targetHelp is the help of every --target flag.
const targetHelp = "process to ask about: app (through the triage agent or gops) or self (the sidecar); default: the app when one is configured, else the sidecar"

// parseTarget turns --target into the API's Target.
func parseTarget(s string) (triagev1.Target, error) {
	switch strings.ToLower(s) {
	case "":
		return triagev1.Target_TARGET_UNSPECIFIED, nil
	case "app":
		return triagev1.Target_TARGET_APP, nil
	case "self", "sidecar":
		return triagev1.Target_TARGET_SELF, nil
	}
	return 0, usageError{fmt.Sprintf("invalid --target %q: use app or self", s)}
}

// parsePath turns --path into the API's GoroutinePath.
func parsePath(s string) (triagev1.GoroutinePath, error) {
	switch strings.ToLower(s) {
	case "":
		return triagev1.GoroutinePath_GOROUTINE_PATH_UNSPECIFIED, nil
	case "profile":
		return triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE, nil
	case "text":
		return triagev1.GoroutinePath_GOROUTINE_PATH_TEXT, nil
	}
	return 0, usageError{fmt.Sprintf("invalid --path %q: use profile (fast, no wait states) or text (wait states, stops the world)", s)}
}

// profileTypes are the --type values, in the order help lists them.
var profileTypes = []struct {
	name string
	typ  triagev1.ProfileType
	// timed types sample for a duration; the others are snapshots.
	timed bool
}{
	{"wall", triagev1.ProfileType_PROFILE_TYPE_WALL, true},
	{"cpu", triagev1.ProfileType_PROFILE_TYPE_CPU, true},
	{"heap", triagev1.ProfileType_PROFILE_TYPE_HEAP, false},
	{"allocs", triagev1.ProfileType_PROFILE_TYPE_ALLOCS, false},
	{"block", triagev1.ProfileType_PROFILE_TYPE_BLOCK, true},
	{"mutex", triagev1.ProfileType_PROFILE_TYPE_MUTEX, true},
	{"goroutine", triagev1.ProfileType_PROFILE_TYPE_GOROUTINE, false},
	{"threadcreate", triagev1.ProfileType_PROFILE_TYPE_THREADCREATE, false},
	{"trace", triagev1.ProfileType_PROFILE_TYPE_TRACE, true},
}

// profileTypeNames is "wall|cpu|...".
func profileTypeNames() string {
	names := make([]string, len(profileTypes))
	for i, p := range profileTypes {
		names[i] = p.name
	}
	return strings.Join(names, "|")
}

// parseProfileType turns --type into the API's ProfileType and whether it
// samples for a duration.
func parseProfileType(s string) (triagev1.ProfileType, bool, error) {
	for _, p := range profileTypes {
		if strings.EqualFold(s, p.name) {
			return p.typ, p.timed, nil
		}
	}
	if s == "" {
		return 0, false, usageError{"--type is required: " + profileTypeNames()}
	}
	return 0, false, usageError{fmt.Sprintf("invalid --type %q: use %s", s, profileTypeNames())}
}
