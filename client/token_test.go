package client_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/sidecar"
)

func TestInMemoryToken(t *testing.T) {
	const secret = "in-memory-s3cret"
	_, tokens, policy := writeTokens(t, secret, "memory-user")
	addr, _ := startSidecar(t, func(o *sidecar.Options) {
		o.Dev, o.InsecureLocal, o.TokensFile, o.PolicyFile = "", true, tokens, policy
	})
	tests := []struct {
		name     string
		token    string
		wantUser string
	}{
		{"exact token", secret, "memory-user"},
		{"surrounding white space is ignored", "  " + secret + "\n", "memory-user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, client.Options{Addr: addr, Token: tt.token, Insecure: true})
			ex, err := c.Explain(testContext(t))
			if err != nil {
				t.Fatalf("Explain: %s", client.Describe(err))
			}
			if got := ex.GetAuth().GetCaller(); got.GetName() != tt.wantUser || got.GetMethod() != "token" {
				t.Errorf("caller = %v, want %s by token", got, tt.wantUser)
			}
		})
	}
}

func TestInMemoryTokenRejected(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	write(t, tokenFile, "file-token\n")
	const secret = "never-printed-s3cret"
	tests := []struct {
		name     string
		opts     client.Options
		contains string
	}{
		{"token and token file", client.Options{Token: secret, TokenFile: tokenFile, Insecure: true}, "use one"},
		{"blank token", client.Options{Token: " \t", Insecure: true}, "blank"},
		{"multi-line token", client.Options{Token: secret + "\n" + secret, Insecure: true}, "more than one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.Dial(testContext(t), tt.opts)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			d := client.Describe(err)
			if !strings.Contains(d, tt.contains) || strings.Contains(d, secret) {
				t.Errorf("Describe = %q, want it to contain %q and not the token", d, tt.contains)
			}
		})
	}
}

// TestCloseTwice: closing a client twice (a command's defer and the
// port-forward's close function) is not an error.
func TestCloseTwice(t *testing.T) {
	c, err := client.Dial(t.Context(), client.Options{Addr: "127.0.0.1:1", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
