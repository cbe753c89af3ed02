package injector

import (
	"crypto/tls"
	"os"
	"strings"
	"testing"
	"time"
)

// servedSerial opens a new TLS connection and returns the serial number of
// the certificate the server presents.
func (ts *testServer) servedSerial(t *testing.T) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", ts.addr, &tls.Config{RootCAs: ts.roots, ServerName: serverName, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// waitSerial waits until new connections see want.
func (ts *testServer) waitSerial(t *testing.T, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := ts.servedSerial(t)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serving serial %d, want %d", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCertHotReload swaps the files under a running server: the new pair is
// served; a pair that does not load keeps the old one (and is logged); a
// good pair after it is picked up.
func TestCertHotReload(t *testing.T) {
	ts := startServer(t, serverOpts{interval: 10 * time.Millisecond})
	if got := ts.servedSerial(t); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}

	second := newTestCert(t, 2)
	ts.roots.AddCert(second.cert)
	second.write(t, ts.certFile, ts.keyFile)
	ts.waitSerial(t, 2)
	if !strings.Contains(ts.logs.String(), "serving certificate reloaded") {
		t.Errorf("reload not logged")
	}
	if r := ts.review(t, readRequest(t, "deployment_plain")); r.Patch == nil {
		t.Errorf("not injected after the reload")
	}

	// A key that does not match the certificate.
	third, fourth := newTestCert(t, 3), newTestCert(t, 4)
	ts.roots.AddCert(third.cert)
	ts.roots.AddCert(fourth.cert)
	testCert{certPEM: third.certPEM, keyPEM: fourth.keyPEM}.write(t, ts.certFile, ts.keyFile)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ts.logs.String(), "keeping the previous certificate") {
		if time.Now().After(deadline) {
			t.Fatal("a bad pair was not logged")
		}
		ts.servedSerial(t)
		time.Sleep(20 * time.Millisecond)
	}
	if got := ts.servedSerial(t); got != 2 {
		t.Errorf("after a bad pair: serial %d, want the previous 2", got)
	}

	// Files missing for a moment (a non-atomic update): still serving.
	if err := os.Remove(ts.keyFile); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	if got := ts.servedSerial(t); got != 2 {
		t.Errorf("with the key missing: serial %d, want 2", got)
	}

	third.write(t, ts.certFile, ts.keyFile)
	ts.waitSerial(t, 3)
}

// TestCertReloadRateLimited: the files are looked at no more than once per
// interval.
func TestCertReloadRateLimited(t *testing.T) {
	ts := startServer(t, serverOpts{interval: time.Hour})
	ts.certs.mu.Lock()
	ts.certs.lastCheck = time.Now()
	ts.certs.mu.Unlock()
	next := newTestCert(t, 2)
	ts.roots.AddCert(next.cert)
	next.write(t, ts.certFile, ts.keyFile)
	for range 5 {
		if got := ts.servedSerial(t); got != 1 {
			t.Fatalf("reloaded within the interval: serial %d", got)
		}
	}
	// Move the clock past the interval.
	ts.certs.mu.Lock()
	ts.certs.lastCheck = time.Now().Add(-2 * time.Hour)
	ts.certs.mu.Unlock()
	ts.waitSerial(t, 2)
}

// TestNewCertReloaderErrors: a missing or bad pair at startup is an error.
func TestNewCertReloaderErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewCertReloader(dir+"/nope.crt", dir+"/nope.key", nil); err == nil {
		t.Error("missing files: no error")
	}
	a, b := newTestCert(t, 1), newTestCert(t, 2)
	testCert{certPEM: a.certPEM, keyPEM: b.keyPEM}.write(t, dir+"/tls.crt", dir+"/tls.key")
	if _, err := NewCertReloader(dir+"/tls.crt", dir+"/tls.key", nil); err == nil {
		t.Error("mismatched pair: no error")
	}
}

// TestTLSVersion: TLS 1.1 is refused.
func TestTLSVersion(t *testing.T) {
	ts := startServer(t, serverOpts{})
	conn, err := tls.Dial("tcp", ts.addr, &tls.Config{RootCAs: ts.roots, ServerName: serverName, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	if got := ts.servedSerial(t); got != 1 {
		t.Errorf("serial %d", got)
	}
}
