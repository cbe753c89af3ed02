package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/triage-sh/triage/client"
)

func TestAddFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want Flags
	}{
		{"defaults", nil, Flags{Concurrency: 10, TierNamespace: "triage-system", Audience: "triage.dev", Port: 7070, Container: "triage-sidecar"}},
		{"all set", []string{"--kubeconfig=/k", "--context=prod", "-n", "shop", "--direct", "--concurrency=3",
			"--pod-timeout=30s", "--fleet-timeout=2m", "--tier-namespace=tiers", "--audience=aud", "--sidecar-port=7171", "--sidecar-container=tr"},
			Flags{Kubeconfig: "/k", Context: "prod", Namespace: "shop", Direct: true, Concurrency: 3, PodTimeout: 30 * time.Second,
				Timeout: 2 * time.Minute, TierNamespace: "tiers", Audience: "aud", Port: 7171, Container: "tr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Flags
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			f.AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if f != tt.want {
				t.Errorf("flags = %+v\nwant %+v", f, tt.want)
			}
		})
	}
}

func TestFlagsValidate(t *testing.T) {
	tests := []struct {
		name string
		f    Flags
		env  string
		want string
	}{
		{"ok", Flags{}, "", ""},
		{"spdy from env", Flags{}, "spdy", ""},
		{"bad concurrency", Flags{Concurrency: -1}, "", "--concurrency"},
		{"bad port", Flags{Port: 70000}, "", "--sidecar-port"},
		{"negative timeout", Flags{PodTimeout: -time.Second}, "", "--pod-timeout"},
		{"bad transport env", Flags{}, "carrier-pigeon", "TRIAGE_PORTFORWARD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(TransportEnv, tt.env)
			err := tt.f.withDefaults().validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("validate = %v, want %q", err, tt.want)
			}
		})
	}
	t.Setenv(TransportEnv, "SPDY")
	if got := (Flags{}).withDefaults().Transport; got != TransportSPDY {
		t.Errorf("TRIAGE_PORTFORWARD=SPDY gave transport %q", got)
	}
}

const kubeconfig = `apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: shop}
- name: prod
  context: {cluster: c, user: u}
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: "not-a-real-token"}
`

func TestNewLoadsKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		env         string
		f           Flags
		wantNS      string
		wantContext string
	}{
		{"KUBECONFIG, current context's namespace", path, Flags{}, "shop", "dev"},
		{"--kubeconfig, -n wins", "", Flags{Kubeconfig: path, Namespace: "cart"}, "cart", "dev"},
		{"--context without a namespace", path, Flags{Context: "prod"}, "default", "prod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tt.env)
			t.Setenv("HOME", t.TempDir())
			k, err := New(tt.f, client.Options{})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if k.Namespace != tt.wantNS || k.ContextName != tt.wantContext || k.Config.Host != "https://127.0.0.1:6443" {
				t.Errorf("namespace %q, context %q, host %q; want %q, %q", k.Namespace, k.ContextName, k.Config.Host, tt.wantNS, tt.wantContext)
			}
		})
	}
}

func TestNewWithoutConfig(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	_, err := New(Flags{}, client.Options{})
	if err == nil || !strings.Contains(err.Error(), "set KUBECONFIG or --kubeconfig") {
		t.Fatalf("New without any configuration = %v, want advice to set KUBECONFIG", err)
	}
	_, err = New(Flags{Context: "nope", Kubeconfig: filepath.Join(t.TempDir(), "missing")}, client.Options{})
	if err == nil {
		t.Fatal("New with a missing --kubeconfig succeeded")
	}
}
