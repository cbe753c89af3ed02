package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func newFlags() (*pflag.FlagSet, *string, *int, *time.Duration, *string) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7070", "")
	n := fs.Int("max-streams", 64, "")
	d := fs.Duration("keepalive", time.Second, "")
	tok := fs.String("api-token", "", "")
	if err := MarkSecret(fs, "api-token"); err != nil {
		panic(err)
	}
	fs.String("tls-key", "", "")
	fs.String("config", "", "")
	return fs, addr, n, d, tok
}

func TestResolvePrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("# comment\naddr: 0.0.0.0:1\nmax-streams: 5\nkeepalive: 3s\n"), 0o600)
	fs, addr, n, d, tok := newFlags()
	if err := fs.Parse([]string{"--addr", "127.0.0.1:9", "--tls-key", "/etc/triage/key.pem"}); err != nil {
		t.Fatal(err)
	}
	vals, err := Resolve(fs, Options{EnvPrefix: "TRIAGE_", Environ: []string{"TRIAGE_MAX_STREAMS=7", "TRIAGE_API_TOKEN=s3cret"}, File: file, Skip: []string{"config"}})
	if err != nil {
		t.Fatal(err)
	}
	if *addr != "127.0.0.1:9" || *n != 7 || *d != 3*time.Second || *tok != "s3cret" {
		t.Fatalf("effective: addr=%s n=%d d=%v tok=%s", *addr, *n, *d, *tok)
	}
	want := map[string]Value{
		"addr":        {Value: "127.0.0.1:9", Source: triagev1.Source_SOURCE_FLAG, Origin: "--addr"},
		"max-streams": {Value: "7", Source: triagev1.Source_SOURCE_ENV, Origin: "TRIAGE_MAX_STREAMS"},
		"keepalive":   {Value: "3s", Source: triagev1.Source_SOURCE_FILE, Origin: file + ":4"},
		"api-token":   {Value: "[redacted]", Source: triagev1.Source_SOURCE_ENV, Origin: "TRIAGE_API_TOKEN"},
		"tls-key":     {Value: "/etc/triage/key.pem", Source: triagev1.Source_SOURCE_FLAG, Origin: "--tls-key"},
	}
	if len(vals) != len(want) {
		t.Fatalf("got %d values, want %d: %+v", len(vals), len(want), vals)
	}
	for _, v := range vals {
		w := want[v.Name]
		if v.Value != w.Value || v.Source != w.Source || v.Origin != w.Origin {
			t.Errorf("%s = %+v, want %+v", v.Name, v, w)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name, file string
		env        []string
		want       string
	}{
		{"unknown key", "addr: x\nmax-stream: 3\n", nil, `c.yaml:2: unknown key "max-stream"`},
		{"skipped key is unknown", "config: other.yaml\n", nil, `c.yaml:1: unknown key "config"`},
		{"bad file value", "max-streams: lots\n", nil, "c.yaml:1: max-streams"},
		{"bad env value", "", []string{"TRIAGE_KEEPALIVE=soon"}, `TRIAGE_KEEPALIVE="soon"`},
		{"not a mapping", "- a\n- b\n", nil, "c.yaml:1: the configuration file must be a mapping"},
		{"duplicate", "addr: a\naddr: b\n", nil, `c.yaml:2: key "addr" given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(file, []byte(tt.file), 0o600)
			fs, _, _, _, _ := newFlags()
			_, err := Resolve(fs, Options{EnvPrefix: "TRIAGE_", Environ: tt.env, File: file, Skip: []string{"config"}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestResolveMissingFile(t *testing.T) {
	fs, _, _, _, _ := newFlags()
	_, err := Resolve(fs, Options{File: "/nonexistent/triage.yaml"})
	if err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("err = %v", err)
	}
}

func TestOverride(t *testing.T) {
	vals := []Value{{Name: "tls-cert", Value: "", Source: triagev1.Source_SOURCE_DEFAULT}}
	vals = Override(vals, "tls-cert", "/d/server.pem", triagev1.Source_SOURCE_DEV, "--dev /d")
	if vals[0].Value != "/d/server.pem" || vals[0].Source != triagev1.Source_SOURCE_DEV {
		t.Fatalf("%+v", vals)
	}
}
