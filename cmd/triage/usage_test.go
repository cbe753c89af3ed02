package main

import (
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		contains string
	}{
		{"unknown flag", []string{"--bogus"}, "unknown flag: --bogus"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"extra argument", []string{"explain", "extra"}, `unknown command "extra" for "triage explain"`},
		{"extra argument to proc", []string{"proc", "12"}, `"triage proc"`},
		{"bad output", []string{"-o", "yaml", "explain"}, `invalid --output "yaml"`},
		{"pid not a number", []string{"proc", "--pid", "abc"}, `invalid argument "abc"`},
		{"negative pid", []string{"proc", "--pid", "-1"}, "--pid must be 0"},
		{"sockets without pid", []string{"proc", "--sockets"}, "--sockets and --deps need --pid"},
		{"deps without pid", []string{"proc", "--deps"}, "need --pid"},
		{"bad timeout", []string{"--timeout", "soon", "version"}, `invalid argument "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Nothing listens there: usage errors must be found before dialling.
			r := triage(t, nil, false, append([]string{"--addr", closedAddr(t), "--insecure"}, tt.args...)...)
			if r.code != exitUsage {
				t.Errorf("exit code = %d, want %d (stderr %q)", r.code, exitUsage, r.stderr)
			}
			oneErrorLine(t, r, "triage: ")
			if !strings.Contains(r.stderr, tt.contains) || !strings.Contains(r.stderr, "--help'") {
				t.Errorf("stderr = %q, want %q and a pointer to --help", r.stderr, tt.contains)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"proc", "--help"}, {"help", "explain"}, {}} {
		r := triage(t, nil, false, args...)
		if r.code != exitOK || r.stderr != "" || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("triage %v: code %d, stderr %q, stdout %.60q; want usage on stdout and 0", args, r.code, r.stderr, r.stdout)
		}
	}
}
