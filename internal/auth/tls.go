package auth

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ServerTLS is the sidecar's TLS configuration. The server certificate and
// key, and the client CA bundle, are files re-read when they change (checked
// at most once per reload interval, on a handshake), so a rotated Secret
// takes effect without a restart. A replacement that fails to load leaves
// the previous one in use; the error goes to the WithOnError callback.
type ServerTLS struct {
	certFile, keyFile, caFile string
	requireClientCert         bool

	cert *watched[*keyPair]
	ca   *watched[*caBundle] // nil without a client CA
}

// keyPair is a loaded certificate chain and key.
type keyPair struct {
	tls  tls.Certificate
	leaf *x509.Certificate
	key  crypto.PrivateKey
}

// caBundle is a loaded client CA file.
type caBundle struct {
	pool  *x509.CertPool
	certs []*x509.Certificate
}

// NewServerTLS loads the server certificate and key and, if clientCAFile is
// not empty, the CA bundle that client certificates must chain to. It fails
// at once, naming the file and the fix, if a file is unreadable or invalid,
// if the key does not match the certificate, or if the certificate expired.
//
// With requireClientCert, every client must present a certificate that
// chains to the client CA (mTLS only). Without it, a client certificate is
// verified if given (so bearer tokens can be used instead). Without a client
// CA no client certificate is requested, and requireClientCert is an error.
func NewServerTLS(certFile, keyFile, clientCAFile string, requireClientCert bool, opts ...Option) (*ServerTLS, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs a server certificate and key: set --tls-cert and --tls-key (or use development mode to generate them)")
	}
	if requireClientCert && clientCAFile == "" {
		return nil, errors.New("client certificates are required but no client CA was given: set --client-ca to the CA bundle that signs client certificates, or allow bearer tokens")
	}
	o := buildOptions(opts)
	s := &ServerTLS{certFile: certFile, keyFile: keyFile, caFile: clientCAFile, requireClientCert: requireClientCert}
	var err error
	s.cert, err = newWatched([]string{certFile, keyFile}, func() (*keyPair, error) {
		return loadServerKeyPair(certFile, keyFile, time.Now())
	}, o)
	if err != nil {
		return nil, err
	}
	if clientCAFile != "" {
		s.ca, err = newWatched([]string{clientCAFile}, func() (*caBundle, error) {
			return loadCABundle(clientCAFile)
		}, o)
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Config returns a TLS 1.3 server configuration. Each handshake takes the
// current certificate and client CAs through GetConfigForClient. grpc-go's
// credentials.NewTLS adds the "h2" ALPN protocol to the per-client config;
// other users must set NextProtos themselves if they need ALPN.
func (s *ServerTLS) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current(), nil
		},
	}
}

// ClientAuth is the client authentication the server applies.
func (s *ServerTLS) ClientAuth() tls.ClientAuthType {
	switch {
	case s.ca == nil:
		return tls.NoClientCert
	case s.requireClientCert:
		return tls.RequireAndVerifyClientCert
	default:
		return tls.VerifyClientCertIfGiven
	}
}

// current builds the configuration for one handshake from the current files.
func (s *ServerTLS) current() *tls.Config {
	kp := s.cert.get()
	c := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{kp.tls},
		ClientAuth:   s.ClientAuth(),
	}
	if s.ca != nil {
		c.ClientCAs = s.ca.get().pool
	}
	return c
}

// LastError returns the errors of the last reloads of the certificate and
// the client CA, or nil if they succeeded.
func (s *ServerTLS) LastError() error {
	err := s.cert.err()
	if s.ca != nil {
		err = errors.Join(err, s.ca.err())
	}
	return err
}

// CertInfo describes a certificate in use, for explain. It holds no secret.
type CertInfo struct {
	// Role is "server" (the leaf), "server-chain" (an intermediate sent
	// with it) or "client-ca".
	Role string
	// Path is the file the certificate was read from.
	Path    string
	Subject string
	Issuer  string
	// SANs are "DNS:name", "URI:uri", "IP:addr" and "email:addr".
	SANs      []string
	NotBefore time.Time
	NotAfter  time.Time
	// Serial is the serial number in hexadecimal.
	Serial string
	IsCA   bool
}

// Certificates describes the server certificate chain and the client CAs in
// use now.
func (s *ServerTLS) Certificates() []CertInfo {
	kp := s.cert.get()
	var out []CertInfo
	for i, der := range kp.tls.Certificate {
		c := kp.leaf
		role := "server"
		if i > 0 {
			var err error
			if c, err = x509.ParseCertificate(der); err != nil {
				continue
			}
			role = "server-chain"
		}
		out = append(out, certInfo(role, s.certFile, c))
	}
	if s.ca != nil {
		for _, c := range s.ca.get().certs {
			out = append(out, certInfo("client-ca", s.caFile, c))
		}
	}
	return out
}

func certInfo(role, path string, c *x509.Certificate) CertInfo {
	return CertInfo{
		Role:      role,
		Path:      path,
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		SANs:      SANs(c),
		NotBefore: c.NotBefore,
		NotAfter:  c.NotAfter,
		Serial:    c.SerialNumber.Text(16),
		IsCA:      c.IsCA,
	}
}

// SANs returns c's subject alternative names as "DNS:localhost",
// "URI:spiffe://...", "IP:127.0.0.1" and "email:a@b" strings.
func SANs(c *x509.Certificate) []string {
	var sans []string
	for _, d := range c.DNSNames {
		sans = append(sans, "DNS:"+d)
	}
	for _, u := range c.URIs {
		sans = append(sans, "URI:"+u.String())
	}
	for _, ip := range c.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	for _, e := range c.EmailAddresses {
		sans = append(sans, "email:"+e)
	}
	return sans
}

// IdentityFromCert returns the identity a client certificate stands for: its
// SPIFFE ID (the first URI SAN with scheme spiffe), else its first DNS SAN,
// else its subject common name, else "". It does not verify c: call it only
// on a verified chain's leaf (see IdentityFromConnState).
func IdentityFromCert(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	for _, u := range c.URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			return u.String()
		}
	}
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}

// IdentityFromConnState returns the identity of the client certificate of a
// completed handshake, taken only from a verified chain: ok is false when
// the client presented no certificate or it was not verified.
func IdentityFromConnState(cs *tls.ConnectionState) (identity string, ok bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	id := IdentityFromCert(cs.VerifiedChains[0][0])
	return id, id != ""
}

// ClientTLS returns a TLS 1.3 client configuration for the CLI. caFile is
// the CA bundle the server's certificate must chain to (empty: the system
// roots). certFile and keyFile are the client certificate and key for mTLS;
// give both or neither. serverName is checked against the server's
// certificate (empty: the dialed host).
func ClientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: serverName}
	if caFile != "" {
		b, err := loadCABundle(caFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = b.pool
	}
	switch {
	case certFile != "" && keyFile != "":
		kp, err := loadKeyPair(certFile, keyFile, "client")
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{kp.tls}
	case certFile != "" || keyFile != "":
		return nil, errors.New("a client certificate needs both a certificate and a key file: set both, or neither to use a bearer token")
	}
	return c, nil
}

// loadServerKeyPair loads the server's pair and refuses an expired one.
func loadServerKeyPair(certFile, keyFile string, now time.Time) (*keyPair, error) {
	kp, err := loadKeyPair(certFile, keyFile, "server")
	if err != nil {
		return nil, err
	}
	if now.After(kp.leaf.NotAfter) {
		return nil, fmt.Errorf("server certificate %s expired at %s: renew it (development mode regenerates its own)", certFile, kp.leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return kp, nil
}

// loadKeyPair reads a PEM certificate chain and private key; what is
// "server" or "client" for messages.
func loadKeyPair(certFile, keyFile, what string) (*keyPair, error) {
	flagCert, flagKey := "--tls-cert", "--tls-key"
	if what == "client" {
		flagCert, flagKey = "--cert", "--key"
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read %s certificate: %w; point %s at a PEM certificate file", what, err, flagCert)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read %s key: %w; point %s at the PEM private key of %s", what, err, flagKey, certFile)
	}
	if !hasPEM(certPEM, "CERTIFICATE") {
		hint := "regenerate it or point " + flagCert + " at a PEM certificate"
		if hasPEMSuffix(certPEM, "PRIVATE KEY") {
			hint = "it holds a private key: are " + flagCert + " and " + flagKey + " swapped?"
		}
		return nil, fmt.Errorf("%s certificate %s has no PEM CERTIFICATE block: %s", what, certFile, hint)
	}
	if !hasPEMSuffix(keyPEM, "PRIVATE KEY") {
		return nil, fmt.Errorf("%s key %s has no PEM PRIVATE KEY block: point %s at the private key of %s", what, keyFile, flagKey, certFile)
	}
	kp, err := x509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s certificate %s and key %s: %w; regenerate them, or point %s and %s at a matching pair", what, certFile, keyFile, err, flagCert, flagKey)
	}
	return kp, nil
}

// x509KeyPair parses a certificate chain and key and checks they match.
func x509KeyPair(certPEM, keyPEM []byte) (*keyPair, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "tls: "))
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		c.Leaf = leaf
	}
	return &keyPair{tls: c, leaf: leaf, key: c.PrivateKey}, nil
}

// loadCABundle reads a file of PEM CA certificates.
func loadCABundle(path string) (*caBundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w; point --client-ca (or --ca) at a PEM file of CA certificates", err)
	}
	b := &caBundle{pool: x509.NewCertPool()}
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			if strings.HasSuffix(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("CA bundle %s holds a private key (block %d): it must hold only CA certificates; remove the key and keep it secret", path, n)
			}
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA bundle %s: certificate %d: %w; regenerate it or remove it from the bundle", path, n, err)
		}
		b.pool.AddCert(c)
		b.certs = append(b.certs, c)
	}
	if len(b.certs) == 0 {
		return nil, fmt.Errorf("CA bundle %s has no PEM CERTIFICATE block: point it at the PEM CA certificate(s), e.g. ca.pem", path)
	}
	return b, nil
}

func hasPEM(data []byte, typ string) bool {
	return bytes.Contains(data, []byte("-----BEGIN "+typ+"-----"))
}

func hasPEMSuffix(data []byte, suffix string) bool {
	return bytes.Contains(data, []byte(suffix+"-----"))
}
