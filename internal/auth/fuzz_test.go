package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
)

// globRE is a reference implementation of MatchIdentity's globs.
func globRE(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`\z`)
	return regexp.MustCompile(b.String())
}

func FuzzMatchIdentity(f *testing.F) {
	f.Add("spiffe://td/ns/*/sa/*", "spiffe://td/ns/a/sa/b")
	f.Add("*.example.com", "a.example.com")
	f.Add("a?c", "abc")
	f.Add("?é*", "xé")
	f.Add("*a*a*b", "aaaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if !strings.ContainsAny(pattern, "*?") {
			if got := MatchIdentity(pattern, s); got != (pattern == s) {
				t.Fatalf("MatchIdentity(%q, %q) = %v for a literal pattern", pattern, s, got)
			}
			return
		}
		got := MatchIdentity(pattern, s)
		if !utf8Valid(pattern) || !utf8Valid(s) {
			// Policies hold only valid UTF-8 patterns; identities from
			// certificates may be anything. The regexp reference reads
			// invalid bytes as U+FFFD, so it is no reference here: check
			// only that exact strings match and that nothing panics.
			if pattern == s && !got {
				t.Fatalf("MatchIdentity(%q, %q) = false for the same string", pattern, s)
			}
			return
		}
		want := globRE(pattern).MatchString(s)
		if got != want {
			t.Fatalf("MatchIdentity(%q, %q) = %v, reference %v", pattern, s, got, want)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func FuzzParsePolicy(f *testing.F) {
	seed, err := os.ReadFile("testdata/policy.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, "spiffe://cluster.local/ns/shop/sa/oncall")
	f.Add([]byte(devPolicy), DevClientIdentity)
	f.Add([]byte("bindings:\n  - identities: [\"*\"]\n    roles: [viewer]\n"), "anyone")
	f.Add([]byte("bindings:\n  - identities: [a]\n    roles: [viewer]\n    rolez: [x]\n"), "a")
	f.Add([]byte("x: &a [b]\nbindings:\n  - identities: *a\n    roles: [viewer]\n"), "b")
	f.Add([]byte("bindings: []\n---\nbindings: []\n"), "")
	f.Add([]byte(""), "")
	f.Fuzz(func(t *testing.T, data []byte, identity string) {
		p, err := ParsePolicy("p.yaml", data)
		if err != nil {
			if p != nil {
				t.Fatal("policy and error both returned")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "p.yaml:") && !strings.HasPrefix(line, "  ") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			return
		}
		bindings := p.BindingList()
		if len(bindings) != p.Bindings() || p.Empty() != (len(bindings) == 0) {
			t.Fatal("Bindings/Empty disagree with BindingList")
		}
		// Probe the given identity and every listed pattern taken literally.
		probes := []string{identity}
		for _, b := range bindings {
			if len(b.Identities) == 0 || len(b.Roles) == 0 {
				t.Fatalf("binding at line %d has no identities or no roles", b.Line)
			}
			for _, id := range b.Identities {
				if id == "" {
					t.Fatal("an empty identity was accepted")
				}
				probes = append(probes, id)
			}
			for _, r := range b.Roles {
				if !r.Valid() {
					t.Fatalf("invalid role %q accepted", r)
				}
			}
		}
		for _, id := range probes {
			if !utf8Valid(id) {
				continue // the regexp reference reads invalid bytes as U+FFFD
			}
			// Reference: union of the roles of the bindings whose pattern
			// matches by the regexp reference.
			want := map[Role]bool{}
			if id != "" {
				for _, b := range bindings {
					for _, pat := range b.Identities {
						if pat == id || globRE(pat).MatchString(id) {
							for _, r := range b.Roles {
								want[r] = true
							}
						}
					}
				}
			}
			got := p.Roles(id)
			if len(got) != len(want) {
				t.Fatalf("Roles(%q) = %v, reference %v", id, got, want)
			}
			for _, r := range got {
				if !want[r] {
					t.Fatalf("Roles(%q) = %v grants %s, which no matching binding lists", id, got, r)
				}
			}
		}
	})
}

func FuzzParseTokens(f *testing.F) {
	sum := sha256.Sum256([]byte("s3cret"))
	f.Add([]byte("# tokens\nsha256:"+hex.EncodeToString(sum[:])+" alice\n"), "s3cret")
	f.Add([]byte("sha256:"+strings.ToUpper(hex.EncodeToString(sum[:]))+"\tbob\r\n"), "s3cret")
	f.Add([]byte("sha256:"+hex.EncodeToString(sum[:])+" -\n"), "s3cret")
	f.Add([]byte("s3cret alice\n"), "s3cret")
	f.Add([]byte(""), "")
	f.Fuzz(func(t *testing.T, data []byte, token string) {
		tk, err := ParseTokens("tokens", data)
		if err != nil {
			if tk != nil {
				t.Fatal("tokens and error both returned")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "tokens:") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			return
		}
		sum := sha256.Sum256([]byte(token))
		listed := bytes.Contains(bytes.ToLower(data), []byte("sha256:"+hex.EncodeToString(sum[:])))
		id, ok := tk.Lookup(token)
		if ok && (token == "" || !listed) {
			t.Fatalf("Lookup(%q) accepted a token whose hash is not listed (identity %q)", token, id)
		}
		if ok != (id != "") {
			t.Fatalf("Lookup(%q) = %q, %v", token, id, ok)
		}
		if ok && !bytes.Contains(data, []byte(id)) {
			t.Fatalf("Lookup(%q) returned identity %q not in the file", token, id)
		}
		if listed && token != "" && !ok {
			// A listed hash (not commented out) must be accepted.
			for _, line := range strings.Split(string(data), "\n") {
				fields := strings.Fields(line)
				if len(fields) > 0 && strings.EqualFold(fields[0], "sha256:"+hex.EncodeToString(sum[:])) {
					t.Fatalf("Lookup(%q) refused a token listed on line %q", token, line)
				}
			}
		}
		if tk.Len() != len(tk.Identities()) {
			t.Fatal("Len and Identities disagree")
		}
	})
}
