package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// pki is a CA with a server pair and files on disk, for TLS tests.
type pki struct {
	dir string
	ca  *CA
	// caFile is the server's client CA bundle; rootsFile the client's CA
	// for the server. Both hold ca at first.
	caFile, rootsFile     string
	serverCert, serverKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{dir: dir, ca: ca, caFile: filepath.Join(dir, "client-ca.pem"), rootsFile: filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem")}
	writeReplace(t, p.caFile, string(ca.CertPEM))
	writeReplace(t, p.rootsFile, string(ca.CertPEM))
	p.issueServer(t, ca)
	return p
}

func (p *pki) issueServer(t *testing.T, ca *CA) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(IssueOptions{CommonName: "server", DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(p.serverCert, p.serverKey, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return parseCertPEM(t, certPEM)
}

// client issues a client pair from ca, writes it and returns its paths.
func (p *pki) client(t *testing.T, ca *CA, o IssueOptions) (certFile, keyFile string) {
	t.Helper()
	o.Client = true
	certPEM, keyPEM, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(p.dir, "client-*.pem")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	certFile, keyFile = f.Name(), f.Name()+".key"
	if err := WriteKeyPair(certFile, keyFile, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func parseCertPEM(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type handshakeResult struct {
	serverErr, clientErr error
	identity             string // from the server's verified chain
	hasIdentity          bool
	serverCert           *x509.Certificate // as the client saw it
	version              uint16
}

// handshake runs a TLS handshake over loopback TCP. The server reports its
// verdict by writing one byte after a successful handshake, which the client
// reads, so a refusal that TLS 1.3 delivers after the client's handshake
// completes shows up as a client error too.
func handshake(t *testing.T, server, client *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var res handshakeResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			res.serverErr = err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		tc := tls.Server(conn, server)
		if err := tc.HandshakeContext(ctx); err != nil {
			res.serverErr = err
			return
		}
		cs := tc.ConnectionState()
		res.identity, res.hasIdentity = IdentityFromConnState(&cs)
		tc.Write([]byte{1})
	}()

	d := tls.Dialer{Config: client}
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		tc := conn.(*tls.Conn)
		cs := tc.ConnectionState()
		res.serverCert = cs.PeerCertificates[0]
		res.version = cs.Version
		tc.SetDeadline(time.Now().Add(20 * time.Second))
		_, err = tc.Read(make([]byte, 1))
		conn.Close()
	}
	res.clientErr = err
	<-done
	return res
}

func mustServerTLS(t *testing.T, p *pki, require bool, opts ...Option) *ServerTLS {
	t.Helper()
	opts = append([]Option{WithReloadInterval(0)}, opts...)
	s, err := NewServerTLS(p.serverCert, p.serverKey, p.caFile, require, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustClientTLS(t *testing.T, caFile, cert, key string) *tls.Config {
	t.Helper()
	c, err := ClientTLS(caFile, cert, key, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSClientCertificates(t *testing.T) {
	p := newPKI(t)
	other, err := NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-48 * time.Hour)
	tests := []struct {
		name     string
		ca       *CA
		opts     IssueOptions
		noCert   bool
		force    bool // send the certificate even if its issuer is not among the server's CAs
		require  bool
		accepted bool
		identity string
	}{
		{name: "valid", ca: p.ca, opts: IssueOptions{CommonName: "alice", URIs: []string{"spiffe://td/ns/a/sa/alice"}},
			require: true, accepted: true, identity: "spiffe://td/ns/a/sa/alice"},
		{name: "valid, DNS identity", ca: p.ca, opts: IssueOptions{CommonName: "cn", DNSNames: []string{"bob.example"}},
			require: true, accepted: true, identity: "bob.example"},
		{name: "valid, CN identity", ca: p.ca, opts: IssueOptions{CommonName: "carol"},
			require: true, accepted: true, identity: "carol"},
		{name: "expired", ca: p.ca, opts: IssueOptions{CommonName: "old", NotBefore: past, NotAfter: past.Add(time.Hour)},
			require: true},
		{name: "not yet valid", ca: p.ca, opts: IssueOptions{CommonName: "new", NotBefore: time.Now().Add(time.Hour)},
			require: true},
		{name: "other CA", ca: other, opts: IssueOptions{CommonName: "mallory", URIs: []string{"spiffe://td/ns/a/sa/alice"}},
			require: true},
		{name: "other CA, sent anyway", ca: other, opts: IssueOptions{CommonName: "mallory", URIs: []string{"spiffe://td/ns/a/sa/alice"}},
			force: true, require: true},
		{name: "expired, sent anyway", ca: p.ca, opts: IssueOptions{CommonName: "old", NotBefore: past, NotAfter: past.Add(time.Hour)},
			force: true, require: true},
		{name: "server-only certificate", ca: p.ca, opts: IssueOptions{CommonName: "srv", Server: true},
			require: true},
		{name: "no certificate, required", noCert: true, require: true},
		{name: "no certificate, optional", noCert: true, accepted: true},
		// The Go client sends no certificate the server's CAs did not
		// issue: anonymous, so no identity (a bearer token is then needed).
		{name: "other CA, optional", ca: other, opts: IssueOptions{CommonName: "mallory"}, accepted: true},
		{name: "other CA, optional, sent anyway", ca: other, opts: IssueOptions{CommonName: "mallory"}, force: true},
		{name: "valid, optional", ca: p.ca, opts: IssueOptions{CommonName: "dave"}, accepted: true, identity: "dave"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServerTLS(t, p, tt.require)
			var cert, key string
			if !tt.noCert {
				if tt.name == "server-only certificate" {
					// Issue forces Client; build a server-only pair by hand.
					certPEM, keyPEM, err := tt.ca.Issue(IssueOptions{CommonName: "srv", Server: true})
					if err != nil {
						t.Fatal(err)
					}
					cert, key = filepath.Join(p.dir, "srv.pem"), filepath.Join(p.dir, "srv-key.pem")
					if err := WriteKeyPair(cert, key, certPEM, keyPEM); err != nil {
						t.Fatal(err)
					}
				} else {
					cert, key = p.client(t, tt.ca, tt.opts)
				}
			}
			client := mustClientTLS(t, p.rootsFile, cert, key)
			if tt.force {
				pair := client.Certificates[0]
				client.Certificates = nil
				client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
			}
			res := handshake(t, s.Config(), client)
			if tt.accepted {
				if res.serverErr != nil || res.clientErr != nil {
					t.Fatalf("refused: server %v, client %v", res.serverErr, res.clientErr)
				}
				if res.version != tls.VersionTLS13 {
					t.Errorf("version %x, want TLS 1.3", res.version)
				}
				if res.identity != tt.identity || res.hasIdentity != (tt.identity != "") {
					t.Errorf("identity %q (%v), want %q", res.identity, res.hasIdentity, tt.identity)
				}
				return
			}
			if res.serverErr == nil || res.clientErr == nil {
				t.Fatalf("accepted (identity %q): server %v, client %v", res.identity, res.serverErr, res.clientErr)
			}
		})
	}
}

func TestTLSMinVersion(t *testing.T) {
	p := newPKI(t)
	s := mustServerTLS(t, p, false)
	c := mustClientTLS(t, p.rootsFile, "", "")
	c.MaxVersion = tls.VersionTLS12
	if res := handshake(t, s.Config(), c); res.serverErr == nil {
		t.Fatal("a TLS 1.2 client was accepted")
	}
}

func TestTLSNoClientCA(t *testing.T) {
	p := newPKI(t)
	s, err := NewServerTLS(p.serverCert, p.serverKey, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientAuth() != tls.NoClientCert {
		t.Errorf("ClientAuth() = %v", s.ClientAuth())
	}
	cert, key := p.client(t, p.ca, IssueOptions{CommonName: "alice"})
	res := handshake(t, s.Config(), mustClientTLS(t, p.rootsFile, cert, key))
	if res.serverErr != nil || res.clientErr != nil {
		t.Fatalf("refused: server %v, client %v", res.serverErr, res.clientErr)
	}
	if res.hasIdentity {
		t.Errorf("identity %q without a client CA", res.identity)
	}
	if _, err := NewServerTLS(p.serverCert, p.serverKey, "", true); err == nil || !strings.Contains(err.Error(), "--client-ca") {
		t.Errorf("require without a CA: %v", err)
	}
}

func TestIdentityFromCert(t *testing.T) {
	ca, err := NewCA("id CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts IssueOptions
		want string
	}{
		{"URI over DNS and CN", IssueOptions{CommonName: "cn", DNSNames: []string{"d1", "d2"}, URIs: []string{"https://x.example", "spiffe://td/ns/a/sa/b"}}, "spiffe://td/ns/a/sa/b"},
		{"SPIFFE scheme in capitals", IssueOptions{URIs: []string{"SPIFFE://td/x"}}, "spiffe://td/x"},
		{"non-SPIFFE URI ignored", IssueOptions{CommonName: "cn", DNSNames: []string{"d1"}, URIs: []string{"https://x.example"}}, "d1"},
		{"first DNS over CN", IssueOptions{CommonName: "cn", DNSNames: []string{"d1", "d2"}}, "d1"},
		{"IP does not count", IssueOptions{CommonName: "cn", IPs: []string{"127.0.0.1"}}, "cn"},
		{"CN", IssueOptions{CommonName: "cn"}, "cn"},
		{"nothing", IssueOptions{}, ""},
	}
	for _, tt := range tests {
		certPEM, _, err := ca.Issue(tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := IdentityFromCert(parseCertPEM(t, certPEM)); got != tt.want {
			t.Errorf("%s: IdentityFromCert = %q, want %q", tt.name, got, tt.want)
		}
	}
	if IdentityFromCert(nil) != "" {
		t.Error("nil certificate has an identity")
	}
	if _, ok := IdentityFromConnState(&tls.ConnectionState{}); ok {
		t.Error("an unverified connection has an identity")
	}
}

func TestTLSServerCertReload(t *testing.T) {
	p := newPKI(t)
	var errs []error
	s := mustServerTLS(t, p, true, WithOnError(func(err error) { errs = append(errs, err) }))
	cfg := s.Config()
	cert, key := p.client(t, p.ca, IssueOptions{CommonName: "alice"})
	client := mustClientTLS(t, p.rootsFile, cert, key)

	first := handshake(t, cfg, client)
	if first.clientErr != nil {
		t.Fatal(first.clientErr)
	}
	newLeaf := p.issueServer(t, p.ca)
	second := handshake(t, cfg, client)
	if second.clientErr != nil {
		t.Fatal(second.clientErr)
	}
	if !second.serverCert.Equal(newLeaf) || second.serverCert.Equal(first.serverCert) {
		t.Fatalf("after replacing the files the server presented serial %x, want the new %x", second.serverCert.SerialNumber, newLeaf.SerialNumber)
	}
	if got := s.Certificates()[0].Serial; got != newLeaf.SerialNumber.Text(16) {
		t.Errorf("Certificates()[0].Serial = %s, want %x", got, newLeaf.SerialNumber)
	}

	// A key that does not match: the previous pair stays in use.
	other, _ := NewCA("other", time.Hour)
	_, otherKey, _ := other.Issue(IssueOptions{CommonName: "x"})
	writeReplace(t, p.serverKey, string(otherKey))
	third := handshake(t, cfg, client)
	if third.clientErr != nil {
		t.Fatalf("after a bad key the server stopped working: %v", third.clientErr)
	}
	if !third.serverCert.Equal(newLeaf) {
		t.Error("after a bad key the server changed certificate")
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "does not match") {
		t.Errorf("OnError got %v", errs)
	}
	if s.LastError() == nil {
		t.Error("LastError() = nil")
	}
}

func TestTLSClientCAReload(t *testing.T) {
	p := newPKI(t)
	s := mustServerTLS(t, p, true)
	cfg := s.Config()
	oldCert, oldKey := p.client(t, p.ca, IssueOptions{CommonName: "old"})
	newCA, err := NewCA("new CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newCert, newKey := p.client(t, newCA, IssueOptions{CommonName: "new"})

	if res := handshake(t, cfg, mustClientTLS(t, p.rootsFile, oldCert, oldKey)); res.serverErr != nil {
		t.Fatalf("old client refused before rotation: %v", res.serverErr)
	}
	if res := handshake(t, cfg, mustClientTLS(t, p.rootsFile, newCert, newKey)); res.serverErr == nil {
		t.Fatal("new client accepted before rotation")
	}
	writeReplace(t, p.caFile, string(newCA.CertPEM))
	if res := handshake(t, cfg, mustClientTLS(t, p.rootsFile, newCert, newKey)); res.serverErr != nil {
		t.Fatalf("new client refused after rotation: %v", res.serverErr)
	} else if res.identity != "new" {
		t.Errorf("identity %q", res.identity)
	}
	if res := handshake(t, cfg, mustClientTLS(t, p.rootsFile, oldCert, oldKey)); res.serverErr == nil {
		t.Fatal("old client accepted after rotation")
	}
	infos := s.Certificates()
	if len(infos) != 2 || infos[1].Role != "client-ca" || infos[1].Subject != "CN=new CA,O=triage" || !infos[1].IsCA {
		t.Errorf("Certificates() = %+v", infos)
	}

	// A CA file with no certificate keeps the previous bundle.
	writeReplace(t, p.caFile, "garbage\n")
	if res := handshake(t, cfg, mustClientTLS(t, p.rootsFile, newCert, newKey)); res.serverErr != nil {
		t.Fatalf("new client refused after a bad CA file: %v", res.serverErr)
	}
	if s.LastError() == nil || !strings.Contains(s.LastError().Error(), "no PEM CERTIFICATE") {
		t.Errorf("LastError() = %v", s.LastError())
	}
}

func TestCertificatesInfo(t *testing.T) {
	p := newPKI(t)
	s := mustServerTLS(t, p, false)
	infos := s.Certificates()
	if len(infos) != 2 {
		t.Fatalf("%d certificates", len(infos))
	}
	srv := infos[0]
	if srv.Role != "server" || srv.Path != p.serverCert || srv.Subject != "CN=server" || srv.Issuer != "CN=test CA,O=triage" {
		t.Errorf("server info %+v", srv)
	}
	if !slices.Equal(srv.SANs, []string{"DNS:localhost", "IP:127.0.0.1"}) {
		t.Errorf("SANs %v", srv.SANs)
	}
	if srv.Serial == "" || srv.NotAfter.Before(time.Now()) || srv.IsCA {
		t.Errorf("server info %+v", srv)
	}
	if infos[1].Role != "client-ca" || infos[1].Path != p.caFile {
		t.Errorf("CA info %+v", infos[1])
	}
}

func TestNewServerTLSErrors(t *testing.T) {
	p := newPKI(t)
	dir := p.dir
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	writeReplace(t, garbage, "not a certificate\n")
	otherCA, _ := NewCA("other", time.Hour)
	_, otherKeyPEM, _ := otherCA.Issue(IssueOptions{})
	otherKey := filepath.Join(dir, "other-key.pem")
	writeReplace(t, otherKey, string(otherKeyPEM))
	past := time.Now().Add(-48 * time.Hour)
	expCert, expKey := filepath.Join(dir, "exp.pem"), filepath.Join(dir, "exp-key.pem")
	c, k, _ := p.ca.Issue(IssueOptions{CommonName: "server", NotBefore: past, NotAfter: past.Add(time.Hour), Server: true})
	WriteKeyPair(expCert, expKey, c, k)

	tests := []struct {
		name               string
		cert, key, ca      string
		want1, want2, want string
	}{
		{name: "missing cert", cert: missing, key: p.serverKey, ca: p.caFile, want1: missing, want2: "--tls-cert"},
		{name: "missing key", cert: p.serverCert, key: missing, ca: p.caFile, want1: missing, want2: "--tls-key"},
		{name: "garbage cert", cert: garbage, key: p.serverKey, ca: p.caFile, want1: garbage, want2: "point --tls-cert at a PEM certificate"},
		{name: "swapped", cert: p.serverKey, key: p.serverCert, ca: p.caFile, want1: p.serverKey, want2: "swapped"},
		{name: "garbage key", cert: p.serverCert, key: garbage, ca: p.caFile, want1: garbage, want2: "--tls-key"},
		{name: "mismatched key", cert: p.serverCert, key: otherKey, ca: p.caFile, want1: otherKey, want2: "does not match"},
		{name: "expired", cert: expCert, key: expKey, ca: p.caFile, want1: expCert, want2: "expired"},
		{name: "missing CA", cert: p.serverCert, key: p.serverKey, ca: missing, want1: missing, want2: "--client-ca"},
		{name: "garbage CA", cert: p.serverCert, key: p.serverKey, ca: garbage, want1: garbage, want2: "no PEM CERTIFICATE"},
		{name: "key in CA", cert: p.serverCert, key: p.serverKey, ca: otherKey, want1: otherKey, want2: "private key"},
		{name: "no cert", cert: "", key: p.serverKey, ca: p.caFile, want1: "--tls-cert", want2: "--tls-key"},
	}
	for _, tt := range tests {
		_, err := NewServerTLS(tt.cert, tt.key, tt.ca, true)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want1) || !strings.Contains(err.Error(), tt.want2) {
			t.Errorf("%s: error %q does not contain %q and %q", tt.name, err, tt.want1, tt.want2)
		}
	}
	if _, err := NewServerTLS(missing, p.serverKey, "", false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error does not wrap ErrNotExist: %v", err)
	}
}

func TestClientTLSErrors(t *testing.T) {
	p := newPKI(t)
	if _, err := ClientTLS(p.rootsFile, p.serverCert, "", "localhost"); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("cert without key: %v", err)
	}
	if _, err := ClientTLS(filepath.Join(p.dir, "nope"), "", "", ""); err == nil {
		t.Error("missing CA accepted")
	}
	c, err := ClientTLS("", "", "", "example")
	if err != nil || c.MinVersion != tls.VersionTLS13 || c.RootCAs != nil || c.ServerName != "example" {
		t.Errorf("ClientTLS without files: %+v, %v", c, err)
	}
	// Wrong server name: refused by the client.
	s := mustServerTLS(t, p, false)
	cc, _ := ClientTLS(p.rootsFile, "", "", "not-localhost")
	if res := handshake(t, s.Config(), cc); res.clientErr == nil {
		t.Error("client accepted a server certificate for another name")
	}
}
