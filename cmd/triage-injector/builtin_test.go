package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// fakeAPI is just enough of an API server for the built-in mode: one
// Secret (get, update with resourceVersion) and one webhook configuration
// (get, strategic merge patch of caBundle by webhook name).
type fakeAPI struct {
	mu      sync.Mutex
	secret  corev1.Secret
	webhook admissionregistrationv1.MutatingWebhookConfiguration
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/api/v1/namespaces/triage-system/secrets/triage-injector-tls" && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(&f.secret)
	case r.URL.Path == "/api/v1/namespaces/triage-system/secrets/triage-injector-tls" && r.Method == http.MethodPut:
		// client-go sends protobuf (or JSON): the scheme's deserializer reads both.
		body, _ := io.ReadAll(r.Body)
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		sp, ok := obj.(*corev1.Secret)
		if err != nil || !ok {
			http.Error(w, fmt.Sprintf("%s: %v", r.Header.Get("Content-Type"), err), http.StatusBadRequest)
			return
		}
		s := *sp
		s.TypeMeta = metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"}
		if s.ResourceVersion != f.secret.ResourceVersion {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409}`)
			return
		}
		rv, _ := strconv.Atoi(s.ResourceVersion)
		s.ResourceVersion = strconv.Itoa(rv + 1)
		f.secret = s
		_ = json.NewEncoder(w).Encode(&f.secret)
	case r.URL.Path == "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/triage-injector" && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(&f.webhook)
	case r.URL.Path == "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/triage-injector" && r.Method == http.MethodPatch:
		var p struct {
			Webhooks []admissionregistrationv1.MutatingWebhook `json:"webhooks"`
		}
		if r.Header.Get("Content-Type") != "application/strategic-merge-patch+json" || json.NewDecoder(r.Body).Decode(&p) != nil {
			http.Error(w, "bad patch", http.StatusBadRequest)
			return
		}
		for _, pw := range p.Webhooks {
			for i := range f.webhook.Webhooks {
				if f.webhook.Webhooks[i].Name == pw.Name {
					f.webhook.Webhooks[i].ClientConfig.CABundle = pw.ClientConfig.CABundle
				}
			}
		}
		_ = json.NewEncoder(w).Encode(&f.webhook)
	default:
		http.NotFound(w, r)
	}
}

// TestBuiltinCertsCommand runs the command in built-in mode against an
// empty Secret: it starts without certificate files (healthy, not ready),
// fills the Secret and patches caBundle; once the files appear (as the
// kubelet would sync them) it is ready and serves the certificate that
// the caBundle verifies.
func TestBuiltinCertsCommand(t *testing.T) {
	dir := t.TempDir()
	api := &fakeAPI{
		secret: corev1.Secret{TypeMeta: metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "triage-injector-tls", Namespace: "triage-system", ResourceVersion: "1"}, Type: corev1.SecretTypeOpaque},
		webhook: admissionregistrationv1.MutatingWebhookConfiguration{
			TypeMeta:   metav1.TypeMeta{Kind: "MutatingWebhookConfiguration", APIVersion: "admissionregistration.k8s.io/v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "triage-injector", ResourceVersion: "1"},
			Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "inject.triage.dev"}},
		},
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeFile(t, kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, srv.URL))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	var stderr syncBuf
	cmd := command(context.Background(), "--listen", addr, "--tls-cert", certFile, "--tls-key", keyFile, "--kubeconfig", kubeconfig,
		"--shutdown-delay", "0s", "--builtin-certs", "--cert-secret=triage-injector-tls", "--webhook-config=triage-injector", "--service=triage-injector")
	cmd.Env = append(cmd.Env, "POD_NAMESPACE=triage-system")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("injector log:\n%s", stderr.String())
		}
	}()
	probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}} //nolint:gosec // the kubelet's probes do not verify
	status := func(path string) int {
		r, err := probe.Get("https://" + addr + path)
		if err != nil {
			return 0
		}
		r.Body.Close()
		return r.StatusCode
	}
	deadline := time.Now().Add(20 * time.Second)
	for status("/healthz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/healthz never answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := status("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz without certificate files: %d", code)
	}
	var data map[string][]byte
	for {
		api.mu.Lock()
		data = api.secret.Data
		bundle := api.webhook.Webhooks[0].ClientConfig.CABundle
		api.mu.Unlock()
		if len(data["tls.crt"]) > 0 && bytes.Equal(bundle, data["ca.crt"]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Secret not filled or caBundle not patched")
		}
		time.Sleep(50 * time.Millisecond)
	}
	writeFile(t, keyFile, data["tls.key"])
	writeFile(t, certFile, data["tls.crt"])
	for status("/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("not ready after the certificate files appeared")
		}
		time.Sleep(100 * time.Millisecond)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(data["ca.crt"])
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "triage-injector.triage-system.svc", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("served certificate does not verify with caBundle: %v", err)
	}
	conn.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
