package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Tokens is a set of bearer tokens, each bound to an identity. Only the
// SHA-256 hashes of the tokens are stored.
//
// The tokens file has one entry per line:
//
//	# comments and blank lines are ignored
//	sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 oncall-alice
//	sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752 ci-bot
//
// that is, "sha256:", the 64 hexadecimal digits of the token's SHA-256, one
// or more spaces or tabs, and the identity (no spaces) that the policy grants
// roles to. Make the hash of a token with
//
//	printf %s "$TOKEN" | sha256sum
//
// (printf %s, not echo: a trailing newline would be hashed too). A hash may
// appear only once. An empty file holds no tokens and accepts none.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	hash     [sha256.Size]byte
	identity string
	line     int
}

// ParseTokens parses a tokens file; name is used in error messages (normally
// the file's path). Every error is reported as "name:line: message".
func ParseTokens(name string, data []byte) (*Tokens, error) {
	t := &Tokens{}
	el := &errList{file: name}
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, msg := parseTokenLine(line)
		if msg != "" {
			el.add(lineNo, "%s", msg)
			continue
		}
		if prev, ok := seen[e.hash]; ok {
			el.add(lineNo, "the same token hash is already listed at line %d; remove one of the two lines", prev)
			continue
		}
		seen[e.hash] = lineNo
		e.line = lineNo
		t.entries = append(t.entries, e)
	}
	if err := sc.Err(); err != nil {
		el.add(lineNo+1, "cannot read the line (%v); lines are at most 1 MiB", err)
	}
	if err := el.err(); err != nil {
		return nil, err
	}
	return t, nil
}

const tokenLineHelp = `expected "sha256:<64 hex digits> <identity>"; make the hash with: printf %s "$TOKEN" | sha256sum`

// parseTokenLine parses one non-comment line, returning why it is invalid.
func parseTokenLine(line string) (tokenEntry, string) {
	var e tokenEntry
	fields := strings.Fields(line)
	hashField := fields[0]
	rest, ok := strings.CutPrefix(hashField, "sha256:")
	if !ok {
		if len(hashField) == 2*sha256.Size && isHex(hashField) {
			return e, `the hash needs the "sha256:" prefix; ` + tokenLineHelp
		}
		return e, "this does not look like a token hash (is it a token? store only its hash); " + tokenLineHelp
	}
	if len(rest) != 2*sha256.Size || !isHex(rest) {
		return e, fmt.Sprintf("the hash must be 64 hex digits, got %d characters; %s", len(rest), tokenLineHelp)
	}
	if _, err := hex.Decode(e.hash[:], []byte(rest)); err != nil {
		return e, "invalid hash: " + err.Error()
	}
	switch {
	case len(fields) == 1:
		return e, "no identity after the hash; " + tokenLineHelp
	case len(fields) > 2:
		return e, fmt.Sprintf("identity %q is followed by more text; an identity has no spaces and comments go on their own line", fields[1])
	case fields[1] == "-":
		return e, `identity "-" looks like sha256sum output; replace "-" with the identity the token stands for`
	}
	if msg := checkIdentity(fields[1]); msg != "" {
		return e, fmt.Sprintf("identity %q %s", fields[1], msg)
	}
	e.identity = fields[1]
	return e, ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// LoadTokens reads and parses the tokens file at path.
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w; point --tokens-file at a readable file of \"sha256:<hash> <identity>\" lines", err)
	}
	return ParseTokens(path, data)
}

// Len returns the number of tokens.
func (t *Tokens) Len() int { return len(t.entries) }

// Identities returns the identity of each token, in file order (for explain;
// the hashes are not exposed).
func (t *Tokens) Identities() []string {
	ids := make([]string, len(t.entries))
	for i, e := range t.entries {
		ids[i] = e.identity
	}
	return ids
}

// Lookup returns the identity bound to token. The token's SHA-256 is
// compared with every entry in constant time, without early exit, so the
// time taken does not depend on which entry, if any, matches. An empty token
// is never accepted.
func (t *Tokens) Lookup(token string) (identity string, ok bool) {
	if t == nil || token == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(token))
	match := -1
	for i := range t.entries {
		eq := subtle.ConstantTimeCompare(sum[:], t.entries[i].hash[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return "", false
	}
	return t.entries[match].identity, true
}

// TokensFile is a tokens file reloaded, on access, when it changes (checked
// at most once per reload interval). A file that fails to parse on reload
// leaves the previous tokens in effect; the error goes to the WithOnError
// callback and is returned by LastError.
type TokensFile struct {
	path string
	w    *watched[*Tokens]
}

// NewTokensFile loads the tokens file at path; the first load must succeed.
func NewTokensFile(path string, opts ...Option) (*TokensFile, error) {
	w, err := newWatched([]string{path}, func() (*Tokens, error) { return LoadTokens(path) }, buildOptions(opts))
	if err != nil {
		return nil, err
	}
	return &TokensFile{path: path, w: w}, nil
}

// Path is the tokens file's path.
func (f *TokensFile) Path() string { return f.path }

// Tokens returns the current tokens, reloading them first if the file changed.
func (f *TokensFile) Tokens() *Tokens { return f.w.get() }

// Lookup looks token up in the current tokens.
func (f *TokensFile) Lookup(token string) (identity string, ok bool) {
	return f.Tokens().Lookup(token)
}

// LastError returns the error of the last reload, or nil if it succeeded.
func (f *TokensFile) LastError() error { return f.w.err() }
