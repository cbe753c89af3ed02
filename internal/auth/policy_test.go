package auth

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func TestLoadPolicy(t *testing.T) {
	p, err := LoadPolicy("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Bindings() != 3 || p.Empty() {
		t.Fatalf("Bindings() = %d, Empty() = %v; want 3, false", p.Bindings(), p.Empty())
	}
	if got := p.BindingList()[1].Line; got != 5 {
		t.Errorf("second binding at line %d, want 5", got)
	}
	tests := []struct {
		identity string
		want     []Role
	}{
		{"spiffe://cluster.local/ns/shop/sa/oncall", []Role{Viewer, Operator}}, // union with the glob binding
		{"dev-operator", []Role{Operator}},
		{"a.ops.example.com", []Role{Operator}},
		{"a.b.ops.example.com", []Role{Operator}},
		{".ops.example.com", []Role{Operator}}, // '*' matches nothing too
		{"ops.example.com", nil},
		{"a.ops.example.com.evil", nil},
		{"spiffe://cluster.local/ns/other/sa/default", []Role{Viewer}},
		{"spiffe://cluster.local/ns/a/b/sa/c/d", []Role{Viewer}}, // '*' crosses '/'
		{"spiffe://cluster.local/ns/shop/sa/profiler", []Role{Viewer, Profiler}},
		{"spiffe://other.domain/ns/shop/sa/oncall", nil},
		{"Dev-Operator", nil}, // exact match is case-sensitive
		{"dev-operator ", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := p.Roles(tt.identity); !slices.Equal(got, tt.want) {
			t.Errorf("Roles(%q) = %v, want %v", tt.identity, got, tt.want)
		}
	}
	if !p.Allows("dev-operator", triagev1.Permission_PERMISSION_OPERATE) {
		t.Error("dev-operator may not OPERATE")
	}
	if p.Allows("spiffe://cluster.local/ns/x/sa/y", triagev1.Permission_PERMISSION_PROFILE) {
		t.Error("a viewer may PROFILE")
	}
}

func TestMatchIdentity(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"*", "", true},
		{"*", "anything/at/all", true},
		{"a*", "a", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbcd", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxcyyb", false},
		{"?", "", false},
		{"?", "é", true}, // one character, two bytes
		{"??", "é", false},
		{"a?c", "abc", true},
		{"a?c", "a/c", true},
		{"*.example.com", "x.example.com", true},
		{"*.example.com", "example.com", false},
		{"spiffe://td/ns/*/sa/*", "spiffe://td/ns/a/sa/b", true},
		{"spiffe://td/ns/*/sa/viewer", "spiffe://td/ns/a/sa/viewerx", false},
		{"[abc]", "a", false}, // no classes
		{"[abc]", "[abc]", true},
		{`a\*`, `a\xyz`, true}, // no escaping
		{"**", "x", true},
		{"*a*a*a*a*a*a*b", strings.Repeat("a", 200), false}, // no blow-up
	}
	for _, tt := range tests {
		if got := MatchIdentity(tt.pattern, tt.s); got != tt.want {
			t.Errorf("MatchIdentity(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestParsePolicyEmpty(t *testing.T) {
	for _, src := range []string{"", "# nothing yet\n", "---\n", "bindings:\n", "bindings: []\n", "~\n"} {
		p, err := ParsePolicy("policy.yaml", []byte(src))
		if err != nil {
			t.Errorf("ParsePolicy(%q): %v", src, err)
			continue
		}
		if !p.Empty() || p.Bindings() != 0 || p.Roles("anyone") != nil {
			t.Errorf("ParsePolicy(%q) is not an empty, deny-all policy", src)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the whole error text
	}{
		{"unknown binding key", `# policy
bindings:
  - identities: [a]
    roles: [viewer]
  - identities: [b]
    roles: [viewer]
    rolez: [operator]
`, `policy.yaml:7: unknown key "rolez" (allowed: identities, roles)`},
		{"unknown top-level key", "binding:\n  - identities: [a]\n    roles: [viewer]\n",
			`policy.yaml:1: unknown key "binding" (allowed: bindings)`},
		{"unknown role", "bindings:\n  - identities: [a]\n    roles:\n      - viewer\n      - admin\n",
			`policy.yaml:5: unknown role "admin" (allowed: viewer, profiler, capturer, operator)`},
		{"role not a string", "bindings:\n  - identities: [a]\n    roles: [1]\n",
			`policy.yaml:3: unknown role "1" (allowed: viewer, profiler, capturer, operator)`},
		{"empty identity", "bindings:\n  - identities: [\"\"]\n    roles: [viewer]\n",
			`policy.yaml:2: identity "" is empty; remove it or write the identity`},
		{"identity with spaces", "bindings:\n  - identities: [\" a\"]\n    roles: [viewer]\n",
			`policy.yaml:2: identity " a" has leading or trailing spaces; remove them`},
		{"identity a number", "bindings:\n  - identities: [42]\n    roles: [viewer]\n",
			`policy.yaml:2: identity 42 is a number, not a string; quote it`},
		{"identity null", "bindings:\n  - identities: [~]\n    roles: [viewer]\n",
			`policy.yaml:2: identity ~ is null, not a string; quote it`},
		{"identity a list", "bindings:\n  - identities: [[a]]\n    roles: [viewer]\n",
			`policy.yaml:2: each of identities must be a string, got a list`},
		{"identities a string", "bindings:\n  - identities: a\n    roles: [viewer]\n",
			`policy.yaml:2: identities must be a list, e.g. identities: ["spiffe://cluster.local/ns/shop/sa/oncall"]; got a string`},
		{"roles a string", "bindings:\n  - identities: [a]\n    roles: viewer\n",
			`policy.yaml:3: roles must be a list, e.g. roles: [viewer]; got a string`},
		{"empty identities", "bindings:\n  - identities: []\n    roles: [viewer]\n",
			`policy.yaml:2: identities is empty; list at least one, e.g. identities: ["spiffe://cluster.local/ns/shop/sa/oncall"]`},
		{"empty roles", "bindings:\n  - identities: [a]\n    roles: []\n",
			`policy.yaml:3: roles is empty; list at least one, e.g. roles: [viewer]`},
		{"missing roles", "bindings:\n  - identities: [a]\n",
			`policy.yaml:2: binding has no "roles" key; add e.g. roles: [viewer] (allowed: viewer, profiler, capturer, operator)`},
		{"missing identities", "bindings:\n  - roles: [viewer]\n",
			`policy.yaml:2: binding has no "identities" key; add e.g. identities: ["spiffe://cluster.local/ns/shop/sa/oncall"]`},
		{"duplicate key", "bindings:\n  - identities: [a]\n    roles: [viewer]\n    roles: [operator]\n",
			`policy.yaml:4: duplicate key "roles" (first at line 3); merge the two`},
		{"bindings a mapping", "bindings:\n  identities: [a]\n",
			`policy.yaml:2: bindings must be a list of {identities, roles} entries, got a mapping`},
		{"binding a string", "bindings:\n  - a\n",
			`policy.yaml:2: a binding must be a mapping with identities and roles, got a string`},
		{"top level a list", "- identities: [a]\n",
			"policy.yaml:1: a policy must be a mapping with a \"bindings\" key, e.g.\n  bindings:\n    - identities: [\"spiffe://cluster.local/ns/shop/sa/oncall\"]\n      roles: [viewer]"},
		{"alias", "x: &ids [a]\nbindings:\n  - identities: *ids\n    roles: [viewer]\n",
			"policy.yaml:1: unknown key \"x\" (allowed: bindings)\npolicy.yaml:3: YAML aliases (*name) are not supported in a policy; write the value out"},
		{"merge key", "bindings:\n  - <<: {roles: [viewer]}\n    identities: [a]\n",
			`policy.yaml:2: unknown key "<<" (allowed: identities, roles)` + "\n" +
				`policy.yaml:2: binding has no "roles" key; add e.g. roles: [viewer] (allowed: viewer, profiler, capturer, operator)`},
		{"two documents", "bindings: []\n---\nbindings: []\n",
			`policy.yaml:2: a second YAML document (after "---"); a policy is one document`},
		{"syntax error", "bindings:\n  - identities: [a\n    roles: [viewer]\n",
			`policy.yaml:1: invalid YAML: did not find expected ',' or ']'`},
		{"tab indentation", "bindings:\n\t- identities: [a]\n",
			`policy.yaml:2: invalid YAML: found character that cannot start any token`},
		{"several errors", "bindings:\n  - identities: [\"\"]\n    roles: [root]\n",
			`policy.yaml:2: identity "" is empty; remove it or write the identity` + "\n" +
				`policy.yaml:3: unknown role "root" (allowed: viewer, profiler, capturer, operator)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy("policy.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; policy has %d bindings", p.Bindings())
			}
			if p != nil {
				t.Errorf("a policy was returned with the error")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
		})
	}
}

func TestParsePolicyErrorCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("bindings:\n")
	for range 50 {
		b.WriteString("  - identities: [a]\n    roles: [nope]\n")
	}
	_, err := ParsePolicy("p.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxReportedErrors+1 || !strings.Contains(lines[len(lines)-1], "too many errors") {
		t.Errorf("got %d lines ending %q", len(lines), lines[len(lines)-1])
	}
}

func TestLoadPolicyMissing(t *testing.T) {
	_, err := LoadPolicy(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || !strings.Contains(err.Error(), "--policy") {
		t.Errorf("error = %v; want the path and the flag", err)
	}
}

// writeReplace writes data to path through a rename, as Kubernetes and
// editors do, so the file's inode changes whatever the clock resolution.
func writeReplace(t *testing.T, path string, data string) {
	t.Helper()
	if err := writeFileAtomic(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeReplace(t, path, "bindings:\n  - identities: [alice]\n    roles: [viewer]\n")
	var errs []error
	f, err := NewPolicyFile(path, WithReloadInterval(0), WithOnError(func(err error) { errs = append(errs, err) }))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Roles("alice"); !slices.Equal(got, []Role{Viewer}) {
		t.Fatalf("alice: %v", got)
	}

	writeReplace(t, path, "bindings:\n  - identities: [alice]\n    roles: [operator]\n")
	if got := f.Roles("alice"); !slices.Equal(got, []Role{Operator}) {
		t.Fatalf("after change, alice: %v", got)
	}

	// A bad file keeps the previous policy and reports once.
	writeReplace(t, path, "bindings:\n  - identities: [alice]\n    roles: [root]\n")
	for range 3 {
		if got := f.Roles("alice"); !slices.Equal(got, []Role{Operator}) {
			t.Fatalf("after a bad change, alice: %v", got)
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), path+`:3: unknown role "root"`) {
		t.Fatalf("OnError got %v", errs)
	}
	if f.LastError() == nil {
		t.Error("LastError() = nil after a bad reload")
	}

	// A removed file too.
	os.Remove(path)
	if got := f.Roles("alice"); !slices.Equal(got, []Role{Operator}) {
		t.Fatalf("after removal, alice: %v", got)
	}
	if len(errs) != 2 {
		t.Fatalf("OnError got %v", errs)
	}

	writeReplace(t, path, "bindings: []\n")
	if !f.Policy().Empty() || f.LastError() != nil {
		t.Errorf("after a good change: Empty=%v LastError=%v", f.Policy().Empty(), f.LastError())
	}
}

func TestPolicyFileInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeReplace(t, path, "bindings:\n  - identities: [alice]\n    roles: [viewer]\n")
	now := time.Unix(1000, 0)
	f, err := NewPolicyFile(path, WithReloadInterval(time.Second), withClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	writeReplace(t, path, "bindings: []\n")
	now = now.Add(500 * time.Millisecond)
	if f.Policy().Empty() {
		t.Fatal("reloaded before the interval passed")
	}
	now = now.Add(500 * time.Millisecond)
	if !f.Policy().Empty() {
		t.Fatal("not reloaded after the interval")
	}
}

func TestNewPolicyFileBad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeReplace(t, path, "bindings:\n  - identities: [a]\n    rolez: [viewer]\n")
	_, err := NewPolicyFile(path)
	if err == nil || !strings.Contains(err.Error(), path+`:3: unknown key "rolez"`) {
		t.Errorf("error = %v", err)
	}
}
