package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"time"

	"github.com/triage-sh/triage/internal/auth"
)

// KeyPair is a certificate and its key, parsed and PEM-encoded. A KeyPair
// made by NewCA can sign others. It is internal/auth's CA with the
// control plane's vocabulary (serving and client certificates).
type KeyPair struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
	ca      *auth.CA
}

// NewCA makes a self-signed certificate authority valid for a day.
func NewCA(commonName string) (*KeyPair, error) {
	ca, err := auth.NewCA(commonName, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: ca.Cert, CertPEM: ca.CertPEM, KeyPEM: ca.KeyPEM, ca: ca}, nil
}

// IssueServing signs a TLS serving certificate for the DNS names and IPs.
func (ca *KeyPair) IssueServing(commonName string, dns []string, ips []net.IP) (*KeyPair, error) {
	o := auth.IssueOptions{CommonName: commonName, DNSNames: dns, Server: true}
	for _, ip := range ips {
		o.IPs = append(o.IPs, ip.String())
	}
	return ca.issue(o)
}

// IssueClient signs a TLS client certificate; Kubernetes reads the common
// name as the user and the organizations as the groups.
func (ca *KeyPair) IssueClient(commonName string, organizations ...string) (*KeyPair, error) {
	return ca.issue(auth.IssueOptions{CommonName: commonName, Organizations: organizations, Client: true})
}

func (ca *KeyPair) issue(o auth.IssueOptions) (*KeyPair, error) {
	if ca.ca == nil {
		return nil, errors.New("this key pair is not a CA")
	}
	o.Validity = 24 * time.Hour
	certPEM, keyPEM, err := ca.ca.Issue(o)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Pool is a certificate pool holding only this certificate.
func (ca *KeyPair) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// TLSCertificate is the pair as a tls.Certificate.
func (ca *KeyPair) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(ca.CertPEM, ca.KeyPEM)
}
