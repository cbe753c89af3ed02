package injector

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	psaapi "k8s.io/pod-security-admission/api"

	"github.com/triage-sh/triage/internal/inject"
)

func TestParseFlagsDefaults(t *testing.T) {
	s, err := ParseFlags([]string{"--tls-cert", "c", "--tls-key", "k"}, "", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := inject.DefaultConfig(); !reflect.DeepEqual(s.Config, want) {
		t.Errorf("config %+v\nwant inject.DefaultConfig() %+v", s.Config, want)
	}
	if s.Listen != ":8443" || s.NamespaceTTL != DefaultNamespaceTTL || s.MaxRequestBytes != DefaultMaxRequestBytes || s.ReviewCacheSize != DefaultReviewCacheSize {
		t.Errorf("settings %+v", s)
	}
}

func TestParseFlagsOverrides(t *testing.T) {
	s, err := ParseFlags([]string{
		"--tls-cert", "c", "--tls-key", "k", "--listen", "127.0.0.1:9443",
		"--image", "registry.example/triage-sidecar:v1", "--image-pull-policy", "Always",
		"--triage-namespace", "triage", "--exclude-namespaces", "a, b,",
		"--default-mode", "classic", "--cpu-request", "20m", "--memory-limit", "0",
		"--default-uid", "1000", "--pod-security-default", "baseline:v1.30",
		"--socket-volume-size", "2Mi", "--namespace-cache-ttl", "5s", "--log-level", "debug",
	}, "v1.2.3", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config
	want := psaapi.LevelVersion{Level: psaapi.LevelBaseline, Version: psaapi.MajorMinorVersion(1, 30)}
	switch {
	case c.Version != "v1.2.3", c.Image != "registry.example/triage-sidecar:v1", c.ImagePullPolicy != corev1.PullAlways,
		c.OwnNamespace != "triage", !reflect.DeepEqual(c.ExcludedNamespaces, []string{"a", "b"}), c.DefaultMode != inject.ModeClassic,
		c.DefaultUID != 1000, c.PodSecurityDefaults.Enforce != want, s.Listen != "127.0.0.1:9443", s.NamespaceTTL != 5*time.Second,
		s.LogLevel != slog.LevelDebug:
		t.Errorf("settings %+v", s)
	}
	if q := c.Resources.Requests[corev1.ResourceCPU]; q.Cmp(resource.MustParse("20m")) != 0 {
		t.Errorf("cpu request %s", q.String())
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		t.Errorf("memory limit 0 should remove it")
	}
	if q := c.VolumeSizeLimit; q.Cmp(resource.MustParse("2Mi")) != 0 {
		t.Errorf("volume size %s", q.String())
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--tls-cert", "c"},
		{"--tls-cert", "c", "--tls-key", "k", "--default-mode", "sideways"},
		{"--tls-cert", "c", "--tls-key", "k", "--image-pull-policy", "Sometimes"},
		{"--tls-cert", "c", "--tls-key", "k", "--pod-security-default", "lax"},
		{"--tls-cert", "c", "--tls-key", "k", "--cpu-request", "lots"},
		{"--tls-cert", "c", "--tls-key", "k", "--default-uid", "0"},
		{"--tls-cert", "c", "--tls-key", "k", "extra"},
	} {
		if _, err := ParseFlags(args, "", &bytes.Buffer{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if _, err := ParseFlags([]string{"-h"}, "", &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"--nope"}, "", &out); code != 2 {
		t.Errorf("Run with a bad flag: exit %d, want 2", code)
	}
}

// TestServe runs the command's Serve: it serves, answers, and on
// cancellation fails /readyz, drains and returns nil.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	c := newTestCert(t, 7)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c.write(t, certFile, keyFile)
	s, err := ParseFlags([]string{"--tls-cert", certFile, "--tls-key", keyFile, "--listen", "127.0.0.1:0", "--shutdown-delay", "200ms"}, "v9", &bytes.Buffer{})
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
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	ts := &testServer{url: "https://" + addr.String(), addr: addr.String()}
	roots := newPool(c)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	ts.client = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp := ts.review(t, readRequest(t, "deployment_plain"))
	if resp.Patch == nil || !strings.Contains(string(resp.Patch), `\"version\":\"v9\"`) {
		t.Errorf("not injected with the version given: %s", resp.Patch)
	}
	cancel()
	// During the shutdown delay /readyz fails while reviews still work.
	time.Sleep(50 * time.Millisecond)
	r, err := ts.client.Get(ts.url + PathReadyz)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz while shutting down: %d", r.StatusCode)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	for _, want := range []string{`"msg":"serving"`, `"msg":"review"`, `"msg":"shutting down"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}
