package auth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Development mode identities and validity periods.
const (
	// DevClientIdentity is the SPIFFE ID of the development client
	// certificate; the development policy grants it operator.
	DevClientIdentity = "spiffe://triage.dev/dev/operator"
	// DevClientCommonName is the development client certificate's CN.
	DevClientCommonName = "dev-operator"

	devCAValidity   = 365 * 24 * time.Hour
	devLeafValidity = 90 * 24 * time.Hour
	// devRenewBefore is how close to expiry a certificate is renewed.
	devRenewBefore = 7 * 24 * time.Hour
)

// devServerSANs are the server certificate's SANs, as SANs formats them.
var devServerSANs = []string{"DNS:localhost", "IP:127.0.0.1", "IP:::1"}

// DevFiles are the paths of the development mode files.
type DevFiles struct {
	Dir string
	// CA and CAKey are the development CA (ca.pem, ca-key.pem). CA is both
	// the server's client CA and the CLI's CA.
	CA, CAKey string
	// ServerCert and ServerKey are the server's pair (server.pem,
	// server-key.pem), for localhost, 127.0.0.1 and ::1.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are the operator client's pair (client.pem,
	// client-key.pem), identity DevClientIdentity.
	ClientCert, ClientKey string
	// Policy is policy.yaml, granting DevClientIdentity the operator role.
	Policy string
	// Created lists the files this call wrote (empty when all were reused),
	// so the caller can log what it made.
	Created []string
}

// devPolicy is written to policy.yaml.
const devPolicy = `# triage authorization policy (development mode).
#
# Generated once by triage development mode; edit it freely, it is not
# overwritten. Default deny: an identity no binding matches has no roles.
#
# Each binding grants its roles to its identities. An identity is the SPIFFE
# URI SAN of a client certificate (else its first DNS SAN, else its CN), or
# the identity a bearer token is bound to. Identities match exactly, or as
# globs: '*' matches any run of characters, '/' included; '?' one character.
#
# Roles are cumulative: viewer (read state) < profiler (+ profiles, traces)
# < capturer (+ packet capture, Envoy tap) < operator (+ mutations).
#
# Example:
#   bindings:
#     - identities: ["spiffe://cluster.local/ns/*/sa/triage-viewer"]
#       roles: [viewer]
bindings:
  # The development client certificate (client.pem, CN dev-operator).
  - identities: ["` + DevClientIdentity + `"]
    roles: [operator]
`

// EnsureDev makes sure dir holds the development mode files and returns
// their paths. It creates dir (mode 0700) if needed, and:
//
//   - a development CA, ECDSA P-256, valid 1 year (ca.pem, ca-key.pem);
//   - a server certificate for DNS:localhost, IP:127.0.0.1, IP:::1, valid
//     90 days (server.pem, server-key.pem);
//   - an operator client certificate, CN dev-operator, URI SAN
//     DevClientIdentity, valid 90 days (client.pem, client-key.pem);
//   - policy.yaml granting DevClientIdentity the operator role.
//
// Existing valid files are reused, never rewritten. A leaf certificate that
// is missing, invalid, not signed by the CA, or within 7 days of expiry is
// issued again (when the server's is, both leaves are); the CA is kept
// unless it is itself missing, invalid or within 7 days of expiry, in which
// case everything but policy.yaml is made anew. An existing policy.yaml is
// never touched. Keys are mode 0600. Files are written to temporary files
// and renamed, under an exclusive lock on dir/.lock, so a sidecar and a CLI
// starting together are safe.
func EnsureDev(dir string) (*DevFiles, error) {
	if dir == "" {
		return nil, errors.New("development mode needs a directory for its certificates")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("development mode: create %s: %w; choose a writable directory", dir, err)
	}
	f := &DevFiles{
		Dir:        dir,
		CA:         filepath.Join(dir, "ca.pem"),
		CAKey:      filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
		Policy:     filepath.Join(dir, "policy.yaml"),
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := f.ensure(time.Now()); err != nil {
		return nil, fmt.Errorf("development mode (%s): %w", dir, err)
	}
	return f, nil
}

// lockDir takes an exclusive flock on dir/.lock, waiting for other holders.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, ".lock")
	lf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("development mode: open lock %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("development mode: lock %s: %w", path, err)
	}
	return func() { lf.Close() }, nil // closing releases the lock
}

func (f *DevFiles) ensure(now time.Time) error {
	ca, err := LoadCA(f.CA, f.CAKey)
	if err != nil || now.Add(devRenewBefore).After(ca.Cert.NotAfter) {
		if ca, err = NewCA("triage development CA", devCAValidity); err != nil {
			return err
		}
		// Leaves of the old CA fail devLeafValid below and are reissued.
		if err := WriteKeyPair(f.CA, f.CAKey, ca.CertPEM, ca.KeyPEM); err != nil {
			return err
		}
		f.Created = append(f.Created, f.CA, f.CAKey)
	}

	leafNotAfter := now.Add(devLeafValidity)
	if leafNotAfter.After(ca.Cert.NotAfter) {
		leafNotAfter = ca.Cert.NotAfter
	}
	serverOK := devLeafValid(ca, f.ServerCert, f.ServerKey, now, x509.ExtKeyUsageServerAuth, func(c *x509.Certificate) bool {
		return slices.Equal(SANs(c), devServerSANs)
	})
	if !serverOK {
		certPEM, keyPEM, err := ca.Issue(IssueOptions{
			CommonName: "localhost",
			DNSNames:   []string{"localhost"},
			IPs:        []string{"127.0.0.1", "::1"},
			NotAfter:   leafNotAfter,
			Server:     true,
		})
		if err != nil {
			return err
		}
		if err := WriteKeyPair(f.ServerCert, f.ServerKey, certPEM, keyPEM); err != nil {
			return err
		}
		f.Created = append(f.Created, f.ServerCert, f.ServerKey)
	}
	clientOK := serverOK && devLeafValid(ca, f.ClientCert, f.ClientKey, now, x509.ExtKeyUsageClientAuth, func(c *x509.Certificate) bool {
		return IdentityFromCert(c) == DevClientIdentity && c.Subject.CommonName == DevClientCommonName
	})
	if !clientOK {
		certPEM, keyPEM, err := ca.Issue(IssueOptions{
			CommonName: DevClientCommonName,
			URIs:       []string{DevClientIdentity},
			NotAfter:   leafNotAfter,
			Client:     true,
		})
		if err != nil {
			return err
		}
		if err := WriteKeyPair(f.ClientCert, f.ClientKey, certPEM, keyPEM); err != nil {
			return err
		}
		f.Created = append(f.Created, f.ClientCert, f.ClientKey)
	}

	if _, err := os.Stat(f.Policy); errors.Is(err, fs.ErrNotExist) {
		if err := writeFileAtomic(f.Policy, []byte(devPolicy), 0o644); err != nil {
			return err
		}
		f.Created = append(f.Created, f.Policy)
	} else if err != nil {
		return err
	}
	return nil
}

// devLeafValid reports whether the pair at certFile/keyFile loads, matches,
// chains to ca for usage, is not within devRenewBefore of expiry, and passes
// check.
func devLeafValid(ca *CA, certFile, keyFile string, now time.Time, usage x509.ExtKeyUsage, check func(*x509.Certificate) bool) bool {
	kp, err := loadKeyPair(certFile, keyFile, "development")
	if err != nil {
		return false
	}
	if now.Add(devRenewBefore).After(kp.leaf.NotAfter) {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := kp.leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return false
	}
	return check(kp.leaf)
}
