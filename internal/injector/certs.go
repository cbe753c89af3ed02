package injector

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReloadInterval is how often, at most, CertReloader looks at the files.
const DefaultReloadInterval = time.Second

// CertReloader serves a certificate and key read from files and re-reads them
// when either file's identity (device, inode, size, mtime) changes, looking at
// most once per interval, from the TLS handshake itself. A Kubernetes Secret
// volume swaps a symlink on update, which changes the inode; cert-manager and
// the built-in mode both update the Secret. A new pair that does not load
// (half written, mismatched, expired files are not checked) is logged and
// the previous certificate is kept until the files change again.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	interval          time.Duration
	now               func() time.Time

	cert   atomic.Pointer[tls.Certificate]
	loaded atomic.Bool // cert came from the files (not a placeholder)

	mu        sync.Mutex // guards the fields below; TryLock'd by handshakes
	lastCheck time.Time
	state     [2]fileID
	statErr   string
}

type fileID struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

// NewCertReloader loads the pair once (an error if it does not load).
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &CertReloader{certFile: certFile, keyFile: keyFile, log: log, interval: DefaultReloadInterval, now: time.Now}
	st, err := c.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("injector: loading the serving certificate: %w", err)
	}
	c.state, c.lastCheck = st, c.now()
	c.cert.Store(&cert)
	c.loaded.Store(true)
	c.logLoaded(&cert, "serving certificate loaded")
	return c, nil
}

// NewWaitingCertReloader is NewCertReloader for files that may not exist
// yet (the built-in mode, before the kubelet has synced the filled Secret
// into its volume): until the pair loads it serves a self-signed placeholder
// for dnsNames (enough for the kubelet's HTTPS probes, which do not verify)
// and Loaded is false; the files are looked at again on handshakes and on
// Loaded, at most once per interval.
func NewWaitingCertReloader(certFile, keyFile string, dnsNames []string, log *slog.Logger) (*CertReloader, error) {
	if c, err := NewCertReloader(certFile, keyFile, log); err == nil {
		return c, nil
	} else if log != nil {
		log.Info("waiting for the serving certificate files; serving a placeholder meanwhile", "cert", certFile, "key", keyFile, "error", err.Error())
	}
	if log == nil {
		log = slog.Default()
	}
	c := &CertReloader{certFile: certFile, keyFile: keyFile, log: log, interval: DefaultReloadInterval, now: time.Now}
	now := c.now()
	ca, _, err := makeCA("triage-injector placeholder", now, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := issueServing(ca, "triage-injector placeholder", dnsNames, now, ca.cert.NotAfter)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if st, err := c.stat(); err == nil {
		c.state = st // present but not loading: wait for a change
	}
	c.lastCheck = now
	c.cert.Store(&cert)
	return c, nil
}

// Loaded reports whether the certificate served came from the files (false
// while a waiting reloader serves its placeholder); it looks at the files
// first when they are due.
func (c *CertReloader) Loaded() bool {
	if !c.loaded.Load() {
		c.maybeReload()
	}
	return c.loaded.Load()
}

// GetCertificate is tls.Config.GetCertificate.
func (c *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.maybeReload()
	return c.cert.Load(), nil
}

// Certificate returns the certificate being served.
func (c *CertReloader) Certificate() *tls.Certificate { return c.cert.Load() }

// maybeReload re-reads the pair when the files changed. Concurrent
// handshakes do not wait for it: they get the current certificate.
func (c *CertReloader) maybeReload() {
	if !c.mu.TryLock() {
		return
	}
	defer c.mu.Unlock()
	now := c.now()
	if now.Sub(c.lastCheck) < c.interval {
		return
	}
	c.lastCheck = now
	st, err := c.stat()
	if err != nil {
		if msg := err.Error(); msg != c.statErr {
			c.statErr = msg
			if c.loaded.Load() {
				c.log.Error("serving certificate files unreadable; keeping the previous certificate", "error", msg)
			} else {
				c.log.Info("still waiting for the serving certificate files", "error", msg)
			}
		}
		return
	}
	c.statErr = ""
	if st == c.state {
		return
	}
	c.state = st
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Error("new serving certificate does not load; keeping the previous certificate", "cert", c.certFile, "key", c.keyFile, "error", err.Error())
		return
	}
	c.cert.Store(&cert)
	c.loaded.Store(true)
	c.logLoaded(&cert, "serving certificate reloaded")
}

func (c *CertReloader) stat() ([2]fileID, error) {
	var st [2]fileID
	for i, name := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return st, fmt.Errorf("injector: %w", err)
		}
		st[i] = fileID{size: fi.Size(), mtime: fi.ModTime()}
		st[i].dev, st[i].ino = devIno(fi)
	}
	return st, nil
}

func (c *CertReloader) logLoaded(cert *tls.Certificate, msg string) {
	attrs := []any{"cert", c.certFile}
	if leaf := cert.Leaf; leaf != nil {
		attrs = append(attrs, "subject", leaf.Subject.String(), "dnsNames", leaf.DNSNames, "serial", leaf.SerialNumber.String(), "notAfter", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	c.log.Info(msg, attrs...)
}
