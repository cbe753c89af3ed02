package auth

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func readAll(t *testing.T, f *DevFiles) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, p := range []string{f.CA, f.CAKey, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey, f.Policy} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[p] = b
	}
	return m
}

func TestEnsureDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	f, err := EnsureDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Created) != 7 {
		t.Errorf("first call created %v", f.Created)
	}
	first := readAll(t, f)
	stat1, _ := os.Stat(f.ServerCert)

	f2, err := EnsureDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f2.Created) != 0 {
		t.Errorf("second call created %v", f2.Created)
	}
	for p, b := range readAll(t, f2) {
		if !bytes.Equal(b, first[p]) {
			t.Errorf("%s was rewritten", p)
		}
	}
	stat2, _ := os.Stat(f.ServerCert)
	if !os.SameFile(stat1, stat2) || !stat1.ModTime().Equal(stat2.ModTime()) {
		t.Error("server.pem was replaced")
	}

	// Permissions.
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	for _, p := range []string{f.CAKey, f.ServerKey, f.ClientKey} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}

	// The client certificate chains to the CA and stands for the operator.
	ca, err := LoadCA(f.CA, f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	client := parseCertPEM(t, first[f.ClientCert])
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify: %v", err)
	}
	if id := IdentityFromCert(client); id != DevClientIdentity || client.Subject.CommonName != "dev-operator" {
		t.Errorf("client identity %q, CN %q", id, client.Subject.CommonName)
	}
	if d := time.Until(client.NotAfter); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Errorf("client certificate valid for %v", d)
	}
	if d := time.Until(ca.Cert.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("CA valid for %v", d)
	}
	server := parseCertPEM(t, first[f.ServerCert])
	if !slices.Equal(SANs(server), []string{"DNS:localhost", "IP:127.0.0.1", "IP:::1"}) {
		t.Errorf("server SANs %v", SANs(server))
	}

	// The policy grants it operator, and nobody else anything.
	pol, err := LoadPolicy(f.Policy)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pol.Roles(DevClientIdentity), []Role{Operator}) {
		t.Errorf("dev identity roles %v", pol.Roles(DevClientIdentity))
	}
	if pol.Roles("dev-operator") != nil || pol.Bindings() != 1 {
		t.Errorf("policy grants more than the dev identity")
	}

	// And a real handshake with the files works, with that identity.
	s, err := NewServerTLS(f.ServerCert, f.ServerKey, f.CA, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		c, err := ClientTLS(f.CA, f.ClientCert, f.ClientKey, host)
		if err != nil {
			t.Fatal(err)
		}
		res := handshake(t, s.Config(), c)
		if res.serverErr != nil || res.clientErr != nil {
			t.Fatalf("%s: server %v, client %v", host, res.serverErr, res.clientErr)
		}
		if !pol.Allows(res.identity, triagev1.Permission_PERMISSION_OPERATE) {
			t.Errorf("%s: identity %q may not operate", host, res.identity)
		}
	}
}

func TestEnsureDevRenewsLeaves(t *testing.T) {
	dir := t.TempDir()
	f, err := EnsureDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := readAll(t, f)
	ca, err := LoadCA(f.CA, f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	// A server certificate 3 days from expiry.
	certPEM, keyPEM, err := ca.Issue(IssueOptions{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1", "::1"}, Validity: 3 * 24 * time.Hour, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(f.ServerCert, f.ServerKey, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if f, err = EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	after := readAll(t, f)
	for _, p := range []string{f.CA, f.CAKey, f.Policy} {
		if !bytes.Equal(before[p], after[p]) {
			t.Errorf("%s changed", p)
		}
	}
	for _, p := range []string{f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey} {
		if bytes.Equal(before[p], after[p]) || bytes.Equal(after[p], certPEM) || bytes.Equal(after[p], keyPEM) {
			t.Errorf("%s was not renewed", p)
		}
	}
	if d := time.Until(parseCertPEM(t, after[f.ServerCert]).NotAfter); d < 80*24*time.Hour {
		t.Errorf("renewed server certificate valid for %v", d)
	}

	// A corrupted client certificate is reissued; the server's is kept.
	before = after
	writeReplace(t, f.ClientCert, "garbage")
	if f, err = EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	after = readAll(t, f)
	if !bytes.Equal(before[f.ServerCert], after[f.ServerCert]) || bytes.Equal(before[f.ClientCert], after[f.ClientCert]) {
		t.Error("a bad client certificate did not reissue only the client's")
	}
	if !slices.Equal(f.Created, []string{f.ClientCert, f.ClientKey}) {
		t.Errorf("Created = %v", f.Created)
	}

	// An edited policy is left alone.
	writeReplace(t, f.Policy, "bindings: []\n")
	if _, err := EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f.Policy); string(b) != "bindings: []\n" {
		t.Error("policy.yaml was overwritten")
	}
}

func TestEnsureDevExpiringCA(t *testing.T) {
	dir := t.TempDir()
	f, err := EnsureDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := readAll(t, f)
	// A CA 2 days from expiry is replaced, with its leaves.
	ca, err := NewCA("triage development CA", 2*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(f.CA, f.CAKey, ca.CertPEM, ca.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if f, err = EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	if len(f.Created) != 6 || bytes.Equal(readAll(t, f)[f.CA], ca.CertPEM) {
		t.Errorf("expiring CA not replaced; created %v", f.Created)
	}
	if !bytes.Equal(readAll(t, f)[f.Policy], old[f.Policy]) {
		t.Error("policy changed")
	}
}

func TestEnsureDevConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	const n = 8
	results := make([]*DevFiles, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = EnsureDev(dir)
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if len(results[i].Created) > 0 {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d calls created files, want 1", created)
	}
	// Whatever is on disk is a consistent set.
	f := results[0]
	if _, err := NewServerTLS(f.ServerCert, f.ServerKey, f.CA, true); err != nil {
		t.Fatal(err)
	}
	if _, err := ClientTLS(f.CA, f.ClientCert, f.ClientKey, "localhost"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".pem" && e.Name() != "policy.yaml" && e.Name() != ".lock" {
			t.Errorf("stray file %s", e.Name())
		}
	}
}

func TestEnsureDevBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	writeReplace(t, file, "x")
	if _, err := EnsureDev(filepath.Join(file, "dev")); err == nil {
		t.Error("EnsureDev under a file succeeded")
	}
	if _, err := EnsureDev(""); err == nil {
		t.Error("EnsureDev(\"\") succeeded")
	}
}
