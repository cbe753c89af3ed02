package cluster

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		users   []User
		want    []string // lines, with TOKEN for the user's token
		wantErr string
	}{
		{
			name:  "default users",
			users: DefaultUsers,
			want: []string{
				`TOKEN,kubetest-admin,kubetest-admin,"system:masters"`,
				`TOKEN,alice,alice,"oncall"`,
				`TOKEN,bob,bob`,
			},
		},
		{
			name:  "several groups",
			users: []User{{Name: "carol", Groups: []string{"oncall", "sre"}}},
			want: []string{
				`TOKEN,kubetest-admin,kubetest-admin,"system:masters"`,
				`TOKEN,carol,carol,"oncall,sre"`,
			},
		},
		{name: "comma in name", users: []User{{Name: "a,b"}}, wantErr: "without commas"},
		{name: "empty name", users: []User{{}}, wantErr: "non-empty"},
		{name: "quote in group", users: []User{{Name: "d", Groups: []string{`x"y`}}}, wantErr: "group"},
		{name: "duplicate", users: []User{{Name: "e"}, {Name: "e"}}, wantErr: "twice"},
		{name: "admin taken", users: []User{{Name: AdminUser}}, wantErr: "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{tokens: map[string]string{}, users: map[string]User{}}
			b, err := c.tokenFile(tc.users)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tc.want), b)
			}
			seen := map[string]bool{}
			for i, line := range lines {
				user := strings.Split(line, ",")[1]
				tok := c.tokens[user]
				if len(tok) != 32 || seen[tok] {
					t.Errorf("user %s: token %q, want 32 hex digits, unique", user, tok)
				}
				seen[tok] = true
				if want := strings.Replace(tc.want[i], "TOKEN", tok, 1); line != want {
					t.Errorf("line %d: %q, want %q", i, line, want)
				}
			}
		})
	}
}

// UserConfig uses a static user's token, and impersonation otherwise.
func TestUserConfig(t *testing.T) {
	c := &Cluster{host: "https://127.0.0.1:1", tokens: map[string]string{}, users: map[string]User{}}
	var err error
	if c.ca, err = NewCA("test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.tokenFile(DefaultUsers); err != nil {
		t.Fatal(err)
	}
	admin := c.tokens[AdminUser]
	for _, tc := range []struct {
		user        string
		groups      []string
		wantToken   string
		impersonate bool
	}{
		{user: "alice", wantToken: c.tokens["alice"]},
		{user: "bob", wantToken: c.tokens["bob"]},
		{user: "alice", groups: []string{"sre"}, wantToken: admin, impersonate: true},
		{user: "carol", wantToken: admin, impersonate: true},
		{user: AdminUser, wantToken: admin, impersonate: true},
	} {
		cfg := c.UserConfig(tc.user, tc.groups...)
		if cfg.BearerToken != tc.wantToken {
			t.Errorf("%s %v: wrong bearer token", tc.user, tc.groups)
		}
		if got := cfg.Impersonate.UserName != ""; got != tc.impersonate {
			t.Errorf("%s %v: impersonating %q, want impersonation %v", tc.user, tc.groups, cfg.Impersonate.UserName, tc.impersonate)
		}
		if tc.impersonate && (cfg.Impersonate.UserName != tc.user || len(cfg.Impersonate.Groups) != len(tc.groups)) {
			t.Errorf("%s %v: impersonation %+v", tc.user, tc.groups, cfg.Impersonate)
		}
		if string(cfg.CAData) != string(c.ca.CertPEM) || cfg.Host != c.host {
			t.Errorf("%s: host %q CA %q", tc.user, cfg.Host, cfg.CAData)
		}
	}
}

func TestPKI(t *testing.T) {
	ca, err := NewCA("root")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServing("srv", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.IssueClient("alice", "oncall")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		cert  *KeyPair
		roots *KeyPair
		host  string
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"serving by IP", srv, ca, "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"serving by name", srv, ca, "localhost", x509.ExtKeyUsageServerAuth, true},
		{"serving wrong name", srv, ca, "example.com", x509.ExtKeyUsageServerAuth, false},
		{"serving other CA", srv, other, "127.0.0.1", x509.ExtKeyUsageServerAuth, false},
		{"serving as client", srv, ca, "", x509.ExtKeyUsageClientAuth, false},
		{"client", cli, ca, "", x509.ExtKeyUsageClientAuth, true},
		{"client as serving", cli, ca, "", x509.ExtKeyUsageServerAuth, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cert.Cert.Verify(x509.VerifyOptions{Roots: tc.roots.Pool(), DNSName: tc.host, KeyUsages: []x509.ExtKeyUsage{tc.usage}})
			if (err == nil) != tc.ok {
				t.Errorf("verify: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if cli.Cert.Subject.CommonName != "alice" || len(cli.Cert.Subject.Organization) != 1 || cli.Cert.Subject.Organization[0] != "oncall" {
		t.Errorf("client subject %v", cli.Cert.Subject)
	}
	if _, err := srv.TLSCertificate(); err != nil {
		t.Errorf("TLSCertificate: %v", err)
	}
}

func TestPortForwardURL(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"https://127.0.0.1:6443", "https://127.0.0.1:6443/api/v1/namespaces/ns/pods/p/portforward"},
		{"https://example.com/prefix/", "https://example.com/prefix/api/v1/namespaces/ns/pods/p/portforward"},
	} {
		u, err := PortForwardURL(tc.host, "ns", "p")
		if err != nil || u.String() != tc.want {
			t.Errorf("PortForwardURL(%q) = %v, %v; want %s", tc.host, u, err, tc.want)
		}
	}
	if _, err := PortForwardURL("://bad", "ns", "p"); err == nil {
		t.Error("no error for a bad host")
	}
}

// A failed Start says why and leaves nothing behind.
func TestStartFailsCleanly(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(t.TempDir(), "no-such-binary")
	_, err := Start(t.Context(), Options{Etcd: missing, APIServer: missing, TempDir: base})
	if err == nil || !strings.Contains(err.Error(), "starting etcd") {
		t.Fatalf("Start with a missing etcd: %v, want an error starting etcd", err)
	}
	entries, err := os.ReadDir(base)
	if err != nil || len(entries) != 0 {
		t.Errorf("left %d entries in %s (%v)", len(entries), base, err)
	}
}
