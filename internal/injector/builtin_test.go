package injector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const (
	bcNamespace = "triage-system"
	bcSecret    = "triage-injector-tls"
	bcWebhook   = "triage-injector"
)

func emptySecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: bcSecret, Namespace: bcNamespace}, Type: corev1.SecretTypeOpaque}
}

func webhookConfig() *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: bcWebhook},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			{Name: "inject.triage.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: []byte("stale")}},
			{Name: "second.triage.dev"},
		},
	}
}

func newBuiltin(t *testing.T, objs ...runtime.Object) (*BuiltinCerts, *fake.Clientset, *syncBuffer) {
	t.Helper()
	client := fake.NewClientset(objs...)
	logs := &syncBuffer{}
	return &BuiltinCerts{
		Client: client, Namespace: bcNamespace, SecretName: bcSecret, WebhookConfig: bcWebhook, Service: "triage-injector",
		Log: slog.New(slog.NewJSONHandler(logs, nil)),
	}, client, logs
}

func getSecret(t *testing.T, client *fake.Clientset) *corev1.Secret {
	t.Helper()
	s, err := client.CoreV1().Secrets(bcNamespace).Get(context.Background(), bcSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func countActions(client *fake.Clientset, verb, resource string) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

// verifyChain checks that tls.crt verifies against ca.crt for both names
// and returns the serving and CA certificates.
func verifyChain(t *testing.T, data map[string][]byte) (leaf, ca *x509.Certificate) {
	t.Helper()
	return verifyChainAt(t, data, time.Now())
}

func verifyChainAt(t *testing.T, data map[string][]byte, now time.Time) (leaf, ca *x509.Certificate) {
	t.Helper()
	pair, err := tls.X509KeyPair(data[SecretKeyTLSCert], data[SecretKeyTLSKey])
	if err != nil {
		t.Fatalf("tls.crt/tls.key: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[SecretKeyCACert]) {
		t.Fatal("ca.crt holds no certificate")
	}
	for _, name := range []string{"triage-injector.triage-system.svc", "triage-injector.triage-system.svc.cluster.local"} {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	blk, _ := pem.Decode(data[SecretKeyCACert])
	if ca, err = x509.ParseCertificate(blk.Bytes); err != nil {
		t.Fatal(err)
	}
	return pair.Leaf, ca
}

func checkBundles(t *testing.T, client *fake.Clientset, want []byte) {
	t.Helper()
	cfg, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), bcWebhook, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Webhooks) != 2 {
		t.Fatalf("webhooks %d", len(cfg.Webhooks))
	}
	for _, w := range cfg.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, want) {
			t.Errorf("webhook %s: caBundle %q, want ca.crt", w.Name, w.ClientConfig.CABundle)
		}
	}
}

// TestBuiltinFillsEmptySecret: the shipped empty Secret is filled with a
// chain that verifies for the Service's names, and every webhook's caBundle
// is patched to the CA.
func TestBuiltinFillsEmptySecret(t *testing.T) {
	b, client, _ := newBuiltin(t, emptySecret(), webhookConfig())
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	sec := getSecret(t, client)
	leaf, ca := verifyChain(t, sec.Data)
	if !ca.IsCA || ca.NotAfter.Before(time.Now().Add(9*365*24*time.Hour)) {
		t.Errorf("CA until %v", ca.NotAfter)
	}
	if d := time.Until(leaf.NotAfter); d < 360*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("serving certificate until %v", leaf.NotAfter)
	}
	if _, err := parseCA(sec.Data[SecretKeyCACert], sec.Data[SecretKeyCAKey]); err != nil {
		t.Errorf("ca.key: %v", err)
	}
	checkBundles(t, client, sec.Data[SecretKeyCACert])

	// A second pass changes nothing: no Update, no Patch.
	client.ClearActions()
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, p := countActions(client, "update", "secrets"), countActions(client, "patch", "mutatingwebhookconfigurations"); n+p != 0 {
		t.Errorf("second sync: %d updates, %d patches", n, p)
	}
}

// TestBuiltinValidSecretUntouched: a Secret already holding a valid pair is
// not updated.
func TestBuiltinValidSecretUntouched(t *testing.T) {
	seed, seedClient, _ := newBuiltin(t, emptySecret(), webhookConfig())
	if err := seed.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	filled := getSecret(t, seedClient)
	b, client, _ := newBuiltin(t, filled, webhookConfig())
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := countActions(client, "update", "secrets"); n != 0 {
		t.Errorf("%d updates of a valid Secret", n)
	}
	if got := getSecret(t, client); !bytes.Equal(got.Data[SecretKeyTLSCert], filled.Data[SecretKeyTLSCert]) {
		t.Error("tls.crt changed")
	}
	checkBundles(t, client, filled.Data[SecretKeyCACert])
}

// TestBuiltinRotatesExpiring: a serving certificate within 30 days of its
// end is renewed by the same CA (the caBundle stays); a CA within 30 days
// of its end is replaced, and the new bundle still holds the old CA.
func TestBuiltinRotatesExpiring(t *testing.T) {
	b, client, _ := newBuiltin(t, emptySecret(), webhookConfig())
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := getSecret(t, client)
	firstLeaf, firstCA := verifyChain(t, first.Data)

	later := time.Now().Add(340 * 24 * time.Hour) // 25 days left
	b.Now = func() time.Time { return later }
	client.ClearActions()
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := getSecret(t, client)
	if n := countActions(client, "update", "secrets"); n != 1 {
		t.Errorf("%d updates, want 1", n)
	}
	leaf, ca := verifyChainAt(t, second.Data, later)
	if leaf.SerialNumber.Cmp(firstLeaf.SerialNumber) == 0 {
		t.Error("serving certificate not renewed")
	}
	if !ca.Equal(firstCA) || !bytes.Equal(second.Data[SecretKeyCACert], first.Data[SecretKeyCACert]) || !bytes.Equal(second.Data[SecretKeyCAKey], first.Data[SecretKeyCAKey]) {
		t.Error("CA not kept")
	}
	if n := countActions(client, "patch", "mutatingwebhookconfigurations"); n != 0 {
		t.Errorf("caBundle patched %d times though the CA is the same", n)
	}

	// The CA itself near its end: a new CA, the old one still trusted.
	muchLater := time.Now().Add(DefaultCAValidity - 20*24*time.Hour)
	b.Now = func() time.Time { return muchLater }
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	third := getSecret(t, client)
	if _, ca := verifyChainAt(t, third.Data, muchLater); ca.Equal(firstCA) {
		t.Error("CA not replaced")
	}
	if !bytes.Contains(third.Data[SecretKeyCACert], first.Data[SecretKeyCACert]) {
		t.Error("the new bundle lacks the previous CA")
	}
	checkBundles(t, client, third.Data[SecretKeyCACert])
}

// TestBuiltinConflict: an Update that conflicts is retried from a fresh
// read; when another replica filled the Secret meanwhile, its certificate
// is kept.
func TestBuiltinConflict(t *testing.T) {
	b, client, logs := newBuiltin(t, emptySecret(), webhookConfig())
	var conflicts atomic.Int32
	client.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts.Add(1) == 1 {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, bcSecret, errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := countActions(client, "update", "secrets"); n != 2 {
		t.Errorf("%d updates, want 2", n)
	}
	if n := countActions(client, "get", "secrets"); n != 2 {
		t.Errorf("%d reads, want 2 (re-read after the conflict)", n)
	}
	verifyChain(t, getSecret(t, client).Data)
	if !strings.Contains(logs.String(), "reading it again") {
		t.Error("conflict not logged")
	}

	// Another replica wins the race: the re-read finds its valid Secret.
	other, otherClient, _ := newBuiltin(t, emptySecret(), webhookConfig())
	if err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	winner := getSecret(t, otherClient)
	b2, client2, _ := newBuiltin(t, emptySecret(), webhookConfig())
	client2.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		w := winner.DeepCopy()
		if err := client2.Tracker().Update(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, w, bcNamespace); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, bcSecret, errors.New("the object has been modified"))
	})
	if err := b2.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := getSecret(t, client2)
	if !bytes.Equal(got.Data[SecretKeyTLSCert], winner.Data[SecretKeyTLSCert]) {
		t.Error("the winner's certificate was replaced")
	}
	checkBundles(t, client2, winner.Data[SecretKeyCACert])
}

// TestBuiltinWebhookMissing: without the webhook configuration the Secret
// is filled, the error logged, and Run retries until the configuration
// appears.
func TestBuiltinWebhookMissing(t *testing.T) {
	b, client, logs := newBuiltin(t, emptySecret())
	b.RetryMin, b.RetryMax = 10*time.Millisecond, 20*time.Millisecond
	if err := b.Sync(context.Background()); err == nil || !apierrors.IsNotFound(errors.Unwrap(err)) {
		t.Fatalf("Sync: %v, want not found", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "sync failed; retrying") {
		if time.Now().After(deadline) {
			t.Fatal("the error was not logged")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), webhookConfig(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := getSecret(t, client).Data[SecretKeyCACert]
	for {
		cfg, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), bcWebhook, metav1.GetOptions{})
		if err == nil && bytes.Equal(cfg.Webhooks[0].ClientConfig.CABundle, want) && bytes.Equal(cfg.Webhooks[1].ClientConfig.CABundle, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("caBundle not patched after the configuration appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBuiltinSecretMissing: no Secret is an error (no right to create it).
func TestBuiltinSecretMissing(t *testing.T) {
	b, _, _ := newBuiltin(t, webhookConfig())
	if err := b.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "reading Secret") {
		t.Fatalf("Sync: %v", err)
	}
}

func TestOwnNamespace(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	file := func(v string, err error) func(string) ([]byte, error) {
		return func(string) ([]byte, error) { return []byte(v), err }
	}
	for _, c := range []struct {
		explicit, env, file string
		fileErr             error
		want                string
	}{
		{"flag", "pod", "sa", nil, "flag"},
		{"", "pod", "sa", nil, "pod"},
		{"", "", "sa\n", nil, "sa"},
		{"", "", "", os.ErrNotExist, "default"},
	} {
		if got := OwnNamespace(c.explicit, "default", env(c.env), file(c.file, c.fileErr)); got != c.want {
			t.Errorf("%+v: %q", c, got)
		}
	}
}

func TestParseFlagsBuiltin(t *testing.T) {
	s, err := ParseFlags([]string{"--tls-cert", "c", "--tls-key", "k"}, "", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (BuiltinSettings{Secret: "triage-injector-tls", WebhookConfig: "triage-injector", Service: "triage-injector"}); s.Builtin != want {
		t.Errorf("defaults %+v", s.Builtin)
	}
	s, err = ParseFlags([]string{"--tls-cert", "c", "--tls-key", "k", "--builtin-certs", "--cert-secret=s", "--webhook-config=w", "--service=svc", "--triage-namespace=ns"}, "", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (BuiltinSettings{Enabled: true, Secret: "s", WebhookConfig: "w", Service: "svc", Namespace: "ns"}); s.Builtin != want {
		t.Errorf("settings %+v", s.Builtin)
	}
	bc := s.BuiltinCerts(nil, func(string) string { return "pod-ns" }, os.ReadFile, nil)
	if bc.Namespace != "ns" || strings.Join(bc.DNSNames(), ",") != "svc.ns.svc,svc.ns.svc.cluster.local" {
		t.Errorf("namespace %q names %q", bc.Namespace, bc.DNSNames())
	}
	for _, args := range [][]string{
		{"--builtin-certs", "--cert-secret="},
		{"--builtin-certs", "--webhook-config="},
		{"--builtin-certs", "--service=Not_A_Name"},
	} {
		if _, err := ParseFlags(append([]string{"--tls-cert", "c", "--tls-key", "k"}, args...), "", &bytes.Buffer{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestServeBuiltinWaitsForCert: in built-in mode Serve starts without the
// certificate files, serving /healthz with a placeholder and failing
// /readyz, and becomes ready with the real certificate once they appear.
func TestServeBuiltinWaitsForCert(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	s, err := ParseFlags([]string{"--tls-cert", certFile, "--tls-key", keyFile, "--listen", "127.0.0.1:0", "--shutdown-delay", "0s", "--builtin-certs", "--triage-namespace", "triage-system"}, "v9", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, s, testNamespaces, slog.New(slog.NewJSONHandler(&logs, nil)), func(a net.Addr) { addrc <- a })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	// The kubelet's probes do not verify the certificate.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true} //nolint:gosec // a probe
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		r, err := client.Get("https://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode, r.TLS.PeerCertificates[0].Subject.CommonName
	}
	if code, _ := get(PathHealthz); code != http.StatusOK {
		t.Errorf("healthz without certificate: %d", code)
	}
	if code, cn := get(PathReadyz); code != http.StatusServiceUnavailable || !strings.Contains(cn, "placeholder") {
		t.Errorf("readyz without certificate: %d (served %q)", code, cn)
	}

	// Fill the Secret, as the kubelet would project it.
	b, fc, _ := newBuiltin(t, emptySecret(), webhookConfig())
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	data := getSecret(t, fc).Data
	testCert{certPEM: data[SecretKeyTLSCert], keyPEM: data[SecretKeyTLSKey]}.write(t, certFile, keyFile)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := get(PathReadyz)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after the files appeared: %d\n%s", code, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(data[SecretKeyCACert])
	conn, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: pool, ServerName: "triage-injector.triage-system.svc", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("the real certificate is not served: %v", err)
	}
	conn.Close()
}
