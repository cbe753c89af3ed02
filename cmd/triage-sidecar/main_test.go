package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runBinary runs the sidecar's run() in a child process (it may log to
// stderr and would serve forever on success) and returns its exit code and stderr.
func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperProcess$", "--"}, args...)...)
	cmd.Env = append(append(os.Environ(), "TRIAGE_SIDECAR_HELPER=1"), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

func TestHelperProcess(t *testing.T) {
	if os.Getenv("TRIAGE_SIDECAR_HELPER") != "1" {
		t.Skip("helper process for the exit-code tests")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(args))
}

func TestStartupErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "triage.yaml")
	os.WriteFile(cfg, []byte("addr: 127.0.0.1:0\ntls-certt: x\n"), 0o600)
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"unknown flag", nil, []string{"--bogus"}, 2, "unknown flag: --bogus"},
		{"unknown command", nil, []string{"serve"}, 2, `unknown command "serve": the commands are healthcheck and help`},
		{"positional argument", nil, []string{"--addr", "127.0.0.1:0", "extra"}, 2, `takes no arguments, got ["extra"]`},
		{"healthcheck unknown flag", nil, []string{"healthcheck", "--bogus"}, 2, "unknown flag: --bogus"},
		{"healthcheck argument", nil, []string{"healthcheck", "127.0.0.1:7070"}, 2, "healthcheck takes no arguments"},
		{"bad duration", nil, []string{"--keepalive-time", "soon"}, 2, "keepalive-time"},
		{"bad env", []string{"TRIAGE_MAX_INFLIGHT=many"}, nil, 2, `TRIAGE_MAX_INFLIGHT="many"`},
		{"unknown config key", nil, []string{"--config", cfg}, 2, cfg + `:2: unknown key "tls-certt"`},
		{"no TLS", nil, []string{"--addr", "127.0.0.1:0"}, 1, "no TLS certificate: pass --tls-cert"},
		{"unreadable cert", nil, []string{"--addr", "127.0.0.1:0", "--tls-cert", "/nope/c.pem", "--tls-key", "/nope/k.pem", "--client-ca", "/nope/ca.pem"}, 1, "/nope/c.pem"},
		{"plaintext off loopback", nil, []string{"--addr", "0.0.0.0:7070", "--insecure-local", "--tokens-file", "/x"}, 1, "only on loopback"},
		{"envoy admin off loopback", nil, []string{"--dev", filepath.Join(dir, "dev"), "--addr", "127.0.0.1:0", "--envoy-admin", "http://10.1.2.3:15000"}, 1, "--envoy-allow-remote"},
		{"envoy admin from the environment", []string{"TRIAGE_ENVOY_ADMIN=ftp://127.0.0.1:15000"}, []string{"--dev", filepath.Join(dir, "dev"), "--addr", "127.0.0.1:0"}, 1, `--envoy-admin: ftp://127.0.0.1:15000: envoy admin URL scheme "ftp"`},
		{"envoy bad limit", nil, []string{"--dev", filepath.Join(dir, "dev"), "--addr", "127.0.0.1:0", "--envoy-admin", "http://127.0.0.1:15000", "--envoy-tap-max-concurrent", "0"}, 1, "--envoy-tap-max-concurrent must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := runBinary(t, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tt.code, tt.want)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if !strings.HasPrefix(lines[len(lines)-1], "triage-sidecar: ") {
				t.Fatalf("the error is not one 'triage-sidecar: ...' line: %q", stderr)
			}
		})
	}
}

// TestHelpAndVersion runs the commands that print and exit, in process.
func TestHelpAndVersion(t *testing.T) {
	tests := []struct {
		args []string
		want []string // each must appear in stdout
	}{
		{[]string{"--help"}, []string{"Usage:\n  triage-sidecar [flags]", "triage-sidecar healthcheck [flags]", "--tls-cert string", "--release-memory-idle duration", "--config string"}},
		{[]string{"-h"}, []string{"Usage:\n  triage-sidecar [flags]"}},
		{[]string{"help"}, []string{"Every setting is a flag, a TRIAGE_* environment variable"}},
		{[]string{"help", "healthcheck"}, []string{"triage-sidecar healthcheck [flags]", "--timeout duration", "--unix-socket string"}},
		{[]string{"healthcheck", "--help"}, []string{"--addr string", "(also TRIAGE_ADDR)"}},
		{[]string{"--version"}, []string{"triage-sidecar version "}},
		{[]string{"-v"}, []string{"triage-sidecar version "}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			if err := dispatch(tt.args, &out); err != nil {
				t.Fatalf("dispatch: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
