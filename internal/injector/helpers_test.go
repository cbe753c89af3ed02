package injector

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"

	"github.com/triage-sh/triage/internal/inject"
)

const serverName = "triage-injector.triage-system.svc"

// testdataDir holds internal/inject's AdmissionReview requests (read only).
var testdataDir = filepath.Join("..", "inject", "testdata", "admission")

func testConfig() inject.Config {
	c := inject.DefaultConfig()
	c.Version = "v0.1.0-test"
	c.Image = "ghcr.io/triage-sh/triage-sidecar:v0.1.0"
	return c
}

var (
	nsEnabled    = map[string]string{inject.LabelNamespaceInjection: "enabled"}
	nsBaseline   = map[string]string{inject.LabelNamespaceInjection: "enabled", psaapi.EnforceLevelLabel: "baseline"}
	nsPrivileged = map[string]string{inject.LabelNamespaceInjection: "enabled", psaapi.EnforceLevelLabel: "privileged"}
	nsRestricted = map[string]string{inject.LabelNamespaceInjection: "enabled", psaapi.EnforceLevelLabel: "restricted", psaapi.EnforceVersionLabel: "latest"}
)

// testNamespaces are the namespaces of the testdata requests.
var testNamespaces = StaticNamespaces{
	"shop":        nsEnabled,
	"payments":    nsRestricted,
	"edge":        nsBaseline,
	"netops":      nsPrivileged,
	"legacy":      nsBaseline,
	"default":     {},
	"kube-system": nsEnabled,
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testCert is a self-signed serving certificate for serverName.
type testCert struct {
	certPEM, keyPEM []byte
	cert            *x509.Certificate
}

func newTestCert(t testing.TB, serial int64) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: serverName},
		DNSNames:              []string{serverName},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		cert:    cert,
	}
}

// write replaces the pair the way a Secret volume does: new files renamed
// over the old ones (new inodes).
func (c testCert) write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
	}{{certFile, c.certPEM}, {keyFile, c.keyPEM}} {
		tmp := f.name + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.name); err != nil {
			t.Fatal(err)
		}
	}
}

// testServer is a running injector: the real HTTPS server of NewHTTPServer.
type testServer struct {
	url      string
	addr     string
	client   *http.Client
	certs    *CertReloader
	handler  *Handler
	logs     *syncBuffer
	roots    *x509.CertPool
	certFile string
	keyFile  string
}

type serverOpts struct {
	ns       NamespaceLabeler
	maxBytes int64
	interval time.Duration
	cache    int // Options.ReviewCacheSize
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	if o.ns == nil {
		o.ns = testNamespaces
	}
	dir := t.TempDir()
	ts := &testServer{logs: &syncBuffer{}, roots: x509.NewCertPool(), certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	c := newTestCert(t, 1)
	c.write(t, ts.certFile, ts.keyFile)
	ts.roots.AddCert(c.cert)
	log := slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	if ts.certs, err = NewCertReloader(ts.certFile, ts.keyFile, log); err != nil {
		t.Fatal(err)
	}
	if o.interval > 0 {
		ts.certs.interval = o.interval
	}
	if ts.handler, err = NewHandler(Options{Config: testConfig(), Namespaces: o.ns, Logger: log, MaxRequestBytes: o.maxBytes, ReviewCacheSize: o.cache}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(ln.Addr().String(), ts.handler, ts.certs, log)
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	ts.addr = ln.Addr().String()
	ts.url = "https://" + ts.addr
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: ts.roots, ServerName: serverName, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   true,
	}
	ts.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs.String())
		}
	})
	return ts
}

func readRequest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body to /mutate and returns the status and body.
func (ts *testServer) post(t testing.TB, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.url+PathMutate, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// review posts an AdmissionReview and decodes the answer, which must be a
// 200 AdmissionReview v1 with an allowed response.
func (ts *testServer) review(t testing.TB, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	code, b := ts.post(t, "application/json", bytes.NewReader(body))
	return decodeAnswer(t, code, b)
}

func decodeAnswer(t testing.TB, code int, b []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, b)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, b)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("answer is not an AdmissionReview v1 with a response: %s", b)
	}
	if !out.Response.Allowed {
		t.Fatalf("the injector denied a pod: %s", b)
	}
	return out.Response
}

// applyPatch applies the response's patch to the request's pod.
func applyPatch(t testing.TB, request []byte, resp *admissionv1.AdmissionResponse) (in, out *corev1.Pod) {
	t.Helper()
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(request, &review); err != nil {
		t.Fatal(err)
	}
	raw := review.Request.Object.Raw
	in = &corev1.Pod{}
	if err := json.Unmarshal(raw, in); err != nil {
		t.Fatal(err)
	}
	if resp.Patch == nil {
		return in, in
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patchType %v, want JSONPatch", resp.PatchType)
	}
	patched, err := inject.ApplyPatch(raw, resp.Patch, false)
	if err != nil {
		t.Fatalf("the patch does not apply: %v", err)
	}
	out = &corev1.Pod{}
	if err := json.Unmarshal(patched, out); err != nil {
		t.Fatal(err)
	}
	return in, out
}

// sidecar returns the injected container, or nil.
func sidecar(pod *corev1.Pod) *corev1.Container {
	name := inject.DefaultConfig().ContainerName
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func hasNetRaw(c *corev1.Container) bool {
	if c == nil || c.SecurityContext == nil || c.SecurityContext.Capabilities == nil {
		return false
	}
	for _, capability := range c.SecurityContext.Capabilities.Add {
		if capability == "NET_RAW" {
			return true
		}
	}
	return false
}

func warningsContain(ws []string, sub string) bool {
	for _, w := range ws {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func uidOf(t testing.TB, request []byte) string {
	t.Helper()
	var r struct {
		Request struct {
			UID string `json:"uid"`
		} `json:"request"`
	}
	if err := json.Unmarshal(request, &r); err != nil {
		t.Fatal(err)
	}
	return r.Request.UID
}

func newPool(certs ...testCert) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c.cert)
	}
	return p
}
