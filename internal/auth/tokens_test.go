package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hashLine(token, identity string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:]) + " " + identity + "\n"
}

func TestTokensLookup(t *testing.T) {
	sumUpper := sha256.Sum256([]byte("upper"))
	src := "# triage tokens\n\n" +
		hashLine("s3cret-alice", "oncall-alice") +
		"   " + hashLine("s3cret-bot", "ci-bot") + // leading spaces
		"sha256:" + strings.ToUpper(hex.EncodeToString(sumUpper[:])) + "\tupper-case\r\n" // tab, CRLF
	tk, err := ParseTokens("tokens", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Len() != 3 {
		t.Fatalf("Len() = %d", tk.Len())
	}
	tests := []struct {
		token, identity string
		ok              bool
	}{
		{"s3cret-alice", "oncall-alice", true},
		{"s3cret-bot", "ci-bot", true},
		{"upper", "upper-case", true},
		{"s3cret-alice\n", "", false},
		{"S3cret-alice", "", false},
		{"wrong", "", false},
		{"", "", false},
		{hex.EncodeToString(sumUpper[:]), "", false}, // the hash itself is not a token
	}
	for _, tt := range tests {
		id, ok := tk.Lookup(tt.token)
		if id != tt.identity || ok != tt.ok {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.token, id, ok, tt.identity, tt.ok)
		}
	}
	if got := strings.Join(tk.Identities(), ","); got != "oncall-alice,ci-bot,upper-case" {
		t.Errorf("Identities() = %s", got)
	}

	empty, err := ParseTokens("tokens", []byte("# none yet\n"))
	if err != nil || empty.Len() != 0 {
		t.Fatalf("empty file: %v, %d tokens", err, empty.Len())
	}
	if _, ok := empty.Lookup("anything"); ok {
		t.Error("an empty token set accepted a token")
	}
}

func TestParseTokensErrors(t *testing.T) {
	good := hashLine("a", "alice")
	hexA := strings.TrimPrefix(strings.Fields(good)[0], "sha256:")
	const help = `expected "sha256:<64 hex digits> <identity>"; make the hash with: printf %s "$TOKEN" | sha256sum`
	tests := []struct {
		name, src, want string
	}{
		{"raw token", "# c\nmy-secret-token alice\n",
			"tokens:2: this does not look like a token hash (is it a token? store only its hash); " + help},
		{"no prefix", hexA + " alice\n",
			`tokens:1: the hash needs the "sha256:" prefix; ` + help},
		{"short hash", "sha256:abcd alice\n",
			"tokens:1: the hash must be 64 hex digits, got 4 characters; " + help},
		{"not hex", "sha256:" + strings.Repeat("g", 64) + " alice\n",
			"tokens:1: the hash must be 64 hex digits, got 64 characters; " + help},
		{"no identity", good + "sha256:" + strings.Repeat("0", 64) + "\n",
			"tokens:2: no identity after the hash; " + help},
		{"sha256sum output", "sha256:" + strings.Repeat("0", 64) + " -\n",
			`tokens:1: identity "-" looks like sha256sum output; replace "-" with the identity the token stands for`},
		{"trailing text", "sha256:" + strings.Repeat("0", 64) + " alice # on call\n",
			`tokens:1: identity "alice" is followed by more text; an identity has no spaces and comments go on their own line`},
		{"duplicate", good + "\n" + hashLine("a", "bob"),
			"tokens:3: the same token hash is already listed at line 1; remove one of the two lines"},
		{"duplicate case-insensitive", good + "sha256:" + strings.ToUpper(hexA) + " bob\n",
			"tokens:2: the same token hash is already listed at line 1; remove one of the two lines"},
		{"control character", "sha256:" + strings.Repeat("0", 64) + " al\x01ice\n",
			`tokens:1: identity "al\x01ice" contains a control character`},
		{"two errors", "x\n" + good + "y\n",
			"tokens:1: this does not look like a token hash (is it a token? store only its hash); " + help + "\n" +
				"tokens:3: this does not look like a token hash (is it a token? store only its hash); " + help},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk, err := ParseTokens("tokens", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; %d tokens", tk.Len())
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
		})
	}
}

func TestTokensFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeReplace(t, path, hashLine("t1", "alice"))
	var errs []error
	f, err := NewTokensFile(path, WithReloadInterval(0), WithOnError(func(err error) { errs = append(errs, err) }))
	if err != nil {
		t.Fatal(err)
	}
	check := func(when, token, wantID string, wantOK bool) {
		t.Helper()
		id, ok := f.Lookup(token)
		if id != wantID || ok != wantOK {
			t.Fatalf("%s: Lookup(%q) = %q, %v; want %q, %v", when, token, id, ok, wantID, wantOK)
		}
	}
	check("initially", "t1", "alice", true)
	check("initially", "t2", "", false)

	writeReplace(t, path, hashLine("t2", "bob"))
	check("after rotation", "t1", "", false)
	check("after rotation", "t2", "bob", true)

	writeReplace(t, path, hashLine("t3", "carol")+"plaintext-token carol\n")
	check("after a bad change", "t2", "bob", true)
	check("after a bad change", "t3", "", false)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), path+":2: ") || !strings.Contains(errs[0].Error(), "still using the previous version") {
		t.Fatalf("OnError got %v", errs)
	}
	if f.LastError() == nil {
		t.Fatal("LastError() = nil after a bad reload")
	}

	// In-place rewrite (same inode), as "echo >> file" does.
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(hashLine("t3", "carol") + hashLine("t4", "dave"))
	fh.Close()
	check("after a fix in place", "t4", "dave", true)
	if f.LastError() != nil {
		t.Errorf("LastError() = %v after a good reload", f.LastError())
	}
}

func TestNewTokensFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewTokensFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--tokens") {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(dir, "tokens")
	writeReplace(t, path, "token\n")
	if _, err := NewTokensFile(path); err == nil || !strings.HasPrefix(err.Error(), path+":1: ") {
		t.Errorf("bad file: %v", err)
	}
}
