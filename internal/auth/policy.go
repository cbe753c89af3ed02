package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// A Policy maps identities to roles. It is loaded from YAML:
//
//	# triage authorization policy
//	bindings:
//	  - identities: ["spiffe://cluster.local/ns/shop/sa/oncall", "dev-operator", "*.ops.example.com"]
//	    roles: [operator]
//	  - identities: ["spiffe://cluster.local/ns/*/sa/*"]
//	    roles: [viewer]
//
// Each binding lists identities and roles; both lists must be non-empty. An
// identity is matched exactly, or as a glob when it contains '*' or '?':
//
//   - '*' matches any sequence of characters, including none and including
//     '/' and '.', so "spiffe://cluster.local/ns/*/sa/*" matches every
//     ServiceAccount of the cluster and "*.ops.example.com" matches
//     "a.b.ops.example.com";
//   - '?' matches exactly one character (one UTF-8 code point);
//   - every other character, '[' and '\' included, matches itself; there is
//     no escaping and there are no character classes.
//
// An identity's roles are the union of the roles of every binding that
// matches it. Default deny: an identity no binding matches has no roles, and
// an empty policy (no file content, or "bindings: []") denies everyone; see
// Empty. A pattern of just "*" matches every authenticated identity.
//
// Parsing is strict: unknown keys, unknown roles, non-string identities,
// empty lists, duplicate keys and YAML aliases are errors that name the
// file and line.
type Policy struct {
	name     string
	bindings []Binding
}

// Binding is one entry of a policy's bindings list.
type Binding struct {
	// Identities are exact identities or globs.
	Identities []string
	// Roles are granted to every identity that matches.
	Roles []Role
	// Line is the binding's line in the policy file.
	Line int
}

// ParseError is an error at a line of a policy or tokens file. Its text is
// "file:line: message".
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// maxReportedErrors bounds how many errors one parse reports.
const maxReportedErrors = 20

// errList collects ParseErrors.
type errList struct {
	file string
	errs []error
}

func (l *errList) add(line int, format string, args ...any) {
	if len(l.errs) == maxReportedErrors {
		l.errs = append(l.errs, &ParseError{File: l.file, Msg: "too many errors; fix the ones above first"})
	}
	if len(l.errs) > maxReportedErrors {
		return
	}
	l.errs = append(l.errs, &ParseError{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (l *errList) err() error { return errors.Join(l.errs...) }

// yamlLineRE finds the line in a yaml.v3 syntax error.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// ParsePolicy parses a policy; name is used in error messages (normally the
// file's path). Every error found is reported, one per line of the error's
// text, each as "name:line: message". The line of a YAML syntax error is the
// one yaml.v3 reports, which can be the line where the enclosing construct
// (e.g. an unclosed "[") starts.
func ParsePolicy(name string, data []byte) (*Policy, error) {
	p := &Policy{name: name}
	el := &errList{file: name}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return p, nil // no document at all: an empty policy
		}
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		el.add(extra.Line, "a second YAML document (after \"---\"); a policy is one document")
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}

	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return p, el.err()
		}
		root = root.Content[0]
	}
	if isNull(root) {
		return p, el.err()
	}
	if root.Kind != yaml.MappingNode {
		el.add(root.Line, "a policy must be a mapping with a \"bindings\" key, e.g.\n  bindings:\n    - identities: [\"spiffe://cluster.local/ns/shop/sa/oncall\"]\n      roles: [viewer]")
		return nil, el.err()
	}
	forEachKey(root, el, []string{"bindings"}, func(key string, _ *yaml.Node, val *yaml.Node) {
		p.parseBindings(val, el)
	})
	if err := el.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// yamlError turns a yaml.v3 error into "name:line: message".
func yamlError(name string, err error) error {
	msg := err.Error()
	if te := (*yaml.TypeError)(nil); errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ParseError{File: name, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &ParseError{File: name, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// kindName names a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return "a string"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a " + strings.TrimPrefix(n.Tag, "!!")
	case yaml.AliasNode:
		return "an alias"
	}
	return "something else"
}

// forEachKey calls f for each key of the mapping m that is in allowed,
// reporting unknown, duplicate, non-string keys and aliases.
func forEachKey(m *yaml.Node, el *errList, allowed []string, f func(key string, keyNode, val *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			el.add(k.Line, "a key must be a plain word (allowed: %s)", strings.Join(allowed, ", "))
			continue
		}
		if !contains(allowed, k.Value) || k.Tag != "!!str" {
			el.add(k.Line, "unknown key %q (allowed: %s)", k.Value, strings.Join(allowed, ", "))
			continue
		}
		if prev, ok := seen[k.Value]; ok {
			el.add(k.Line, "duplicate key %q (first at line %d); merge the two", k.Value, prev)
			continue
		}
		seen[k.Value] = k.Line
		f(k.Value, k, v)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *Policy) parseBindings(n *yaml.Node, el *errList) {
	if isNull(n) {
		return // "bindings:" with nothing: empty policy
	}
	if n.Kind == yaml.AliasNode {
		el.add(n.Line, "YAML aliases (*name) are not supported in a policy; write the value out")
		return
	}
	if n.Kind != yaml.SequenceNode {
		el.add(n.Line, "bindings must be a list of {identities, roles} entries, got %s", kindName(n))
		return
	}
	for _, item := range n.Content {
		if item.Kind == yaml.AliasNode {
			el.add(item.Line, "YAML aliases (*name) are not supported in a policy; write the binding out")
			continue
		}
		if item.Kind != yaml.MappingNode {
			el.add(item.Line, "a binding must be a mapping with identities and roles, got %s", kindName(item))
			continue
		}
		b := Binding{Line: item.Line}
		var hasIDs, hasRoles, bad bool
		before := len(el.errs)
		forEachKey(item, el, []string{"identities", "roles"}, func(key string, keyNode, val *yaml.Node) {
			switch key {
			case "identities":
				hasIDs = true
				b.Identities = parseIdentities(keyNode, val, el)
			case "roles":
				hasRoles = true
				b.Roles = parseRoles(keyNode, val, el)
			}
		})
		bad = len(el.errs) != before
		if !hasIDs {
			el.add(item.Line, "binding has no \"identities\" key; add e.g. identities: [\"spiffe://cluster.local/ns/shop/sa/oncall\"]")
			bad = true
		}
		if !hasRoles {
			el.add(item.Line, "binding has no \"roles\" key; add e.g. roles: [viewer] (allowed: %s)", roleNames())
			bad = true
		}
		if !bad {
			p.bindings = append(p.bindings, b)
		}
	}
}

// scalarList checks that val is a non-empty list of scalars and returns its
// items; what names the key in messages.
func scalarList(keyNode, val *yaml.Node, el *errList, what, example string) []*yaml.Node {
	if val.Kind == yaml.AliasNode {
		el.add(val.Line, "YAML aliases (*name) are not supported in a policy; write the value out")
		return nil
	}
	if val.Kind != yaml.SequenceNode {
		el.add(val.Line, "%s must be a list, e.g. %s: %s; got %s", what, what, example, kindName(val))
		return nil
	}
	if len(val.Content) == 0 {
		el.add(keyNode.Line, "%s is empty; list at least one, e.g. %s: %s", what, what, example)
		return nil
	}
	items := make([]*yaml.Node, 0, len(val.Content))
	for _, it := range val.Content {
		if it.Kind == yaml.AliasNode {
			el.add(it.Line, "YAML aliases (*name) are not supported in a policy; write the value out")
			continue
		}
		if it.Kind != yaml.ScalarNode {
			el.add(it.Line, "each of %s must be a string, got %s", what, kindName(it))
			continue
		}
		items = append(items, it)
	}
	return items
}

func parseIdentities(keyNode, val *yaml.Node, el *errList) []string {
	var ids []string
	for _, it := range scalarList(keyNode, val, el, "identities", `["spiffe://cluster.local/ns/shop/sa/oncall"]`) {
		if it.Tag != "!!str" {
			el.add(it.Line, "identity %s is %s, not a string; quote it", it.Value, kindName(it))
			continue
		}
		if msg := checkIdentity(it.Value); msg != "" {
			el.add(it.Line, "identity %q %s", it.Value, msg)
			continue
		}
		ids = append(ids, it.Value)
	}
	return ids
}

// checkIdentity returns why s is not a usable identity or pattern, or "".
func checkIdentity(s string) string {
	if s == "" {
		return "is empty; remove it or write the identity"
	}
	if strings.TrimSpace(s) != s {
		return "has leading or trailing spaces; remove them"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "contains a control character"
		}
	}
	return ""
}

func parseRoles(keyNode, val *yaml.Node, el *errList) []Role {
	var roles []Role
	for _, it := range scalarList(keyNode, val, el, "roles", "[viewer]") {
		r := Role(it.Value)
		if it.Tag != "!!str" || !r.Valid() {
			el.add(it.Line, "unknown role %q (allowed: %s)", it.Value, roleNames())
			continue
		}
		roles = append(roles, r)
	}
	return roles
}

// LoadPolicy reads and parses the policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w; point --policy-file at a readable YAML policy file", err)
	}
	return ParsePolicy(path, data)
}

// Name is the name the policy was parsed with (normally its path).
func (p *Policy) Name() string { return p.name }

// Empty reports whether the policy has no bindings, so denies everyone.
func (p *Policy) Empty() bool { return len(p.bindings) == 0 }

// Bindings returns the number of bindings.
func (p *Policy) Bindings() int { return len(p.bindings) }

// BindingList returns a copy of the bindings, in file order.
func (p *Policy) BindingList() []Binding {
	out := make([]Binding, len(p.bindings))
	for i, b := range p.bindings {
		out[i] = Binding{
			Identities: append([]string(nil), b.Identities...),
			Roles:      append([]Role(nil), b.Roles...),
			Line:       b.Line,
		}
	}
	return out
}

// Roles returns the roles of identity: the union over every binding that
// matches it, least privileged first, without duplicates. An empty identity
// has no roles.
func (p *Policy) Roles(identity string) []Role {
	if p == nil || identity == "" {
		return nil
	}
	var have [4]bool
	for _, b := range p.bindings {
		if !b.matches(identity) {
			continue
		}
		for _, r := range b.Roles {
			if n := r.rank(); n >= 0 {
				have[n] = true
			}
		}
	}
	var roles []Role
	for i, ok := range have {
		if ok {
			roles = append(roles, allRoles[i])
		}
	}
	return roles
}

// Allows reports whether the policy grants identity a role holding perm.
func (p *Policy) Allows(identity string, perm triagev1.Permission) bool {
	return Grants(p.Roles(identity), perm)
}

func (b Binding) matches(identity string) bool {
	for _, pat := range b.Identities {
		if MatchIdentity(pat, identity) {
			return true
		}
	}
	return false
}

// MatchIdentity reports whether identity matches pattern, exactly or as a
// glob: '*' matches any sequence of characters (including '/' and none),
// '?' exactly one character; every other character matches itself.
func MatchIdentity(pattern, identity string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == identity
	}
	// Iterative matching with backtracking to the last '*' only: O(len(p)*len(s)).
	p, s := 0, 0
	starP, starS := -1, 0
	for s < len(identity) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				starP, starS = p, s
				p++
				continue
			case '?':
				_, w := utf8.DecodeRuneInString(identity[s:])
				p++
				s += w
				continue
			default:
				if pattern[p] == identity[s] {
					p++
					s++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last '*' swallow one more character and retry after it.
		_, w := utf8.DecodeRuneInString(identity[starS:])
		starS += w
		p, s = starP+1, starS
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// PolicyFile is a policy loaded from a file and reloaded, on access, when the
// file changes (checked at most once per reload interval). A file that fails
// to parse on reload leaves the previous policy in effect; the error goes to
// the WithOnError callback and is returned by LastError.
type PolicyFile struct {
	path string
	w    *watched[*Policy]
}

// NewPolicyFile loads the policy at path; the first load must succeed.
func NewPolicyFile(path string, opts ...Option) (*PolicyFile, error) {
	w, err := newWatched([]string{path}, func() (*Policy, error) { return LoadPolicy(path) }, buildOptions(opts))
	if err != nil {
		return nil, err
	}
	return &PolicyFile{path: path, w: w}, nil
}

// Path is the policy file's path.
func (f *PolicyFile) Path() string { return f.path }

// Policy returns the current policy, reloading it first if the file changed.
func (f *PolicyFile) Policy() *Policy { return f.w.get() }

// Roles returns the roles of identity under the current policy.
func (f *PolicyFile) Roles(identity string) []Role { return f.Policy().Roles(identity) }

// LastError returns the error of the last reload, or nil if it succeeded.
func (f *PolicyFile) LastError() error { return f.w.err() }
