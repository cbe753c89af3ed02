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
		{"target and --addr", []string{"explain", "extra"}, "--addr names one sidecar and a target names pods"},
		{"two targets", []string{"proc", "pod/a", "deploy/b"}, "takes at most one target"},
		{"target and selector", []string{"goroutines", "pod/a", "-l", "app=x"}, "give either a target or a selector"},
		{"bad target type", []string{"explain", "svc/a"}, `unknown type "svc"`},
		{"bad selector", []string{"explain", "-l", "a==b==c"}, "-l"},
		{"per-pod-dir for one pod", []string{"profile", "--type", "heap", "-w", "x", "--per-pod-dir", "d"}, "--per-pod-dir keeps each pod's profile"},
		{"fleet trace", []string{"profile", "deploy/a", "--type", "trace", "-w", "x"}, "traces are not merged"},
		{"per-pod-dir for a pod target", []string{"profile", "pod/a", "--type", "heap", "-w", "x", "--per-pod-dir", "d"}, "--per-pod-dir keeps each pod's profile"},
		{"fleet trace, TYPE.apps/ spelling", []string{"profile", "statefulsets.apps/a", "--type", "trace", "-w", "x"}, "traces are not merged"},
		{"bad output", []string{"-o", "yaml", "explain"}, `invalid --output "yaml"`},
		{"pid not a number", []string{"proc", "--pid", "abc"}, `invalid argument "abc"`},
		{"negative pid", []string{"proc", "--pid", "-1"}, "--pid must be 0"},
		{"sockets without pid", []string{"proc", "--sockets"}, "--sockets and --deps need --pid"},
		{"deps without pid", []string{"proc", "--deps"}, "need --pid"},
		{"bad timeout", []string{"--timeout", "soon", "version"}, `invalid argument "soon"`},
		{"profile without -w", []string{"profile", "--type", "cpu"}, "-w FILE is required"},
		{"profile without --type", []string{"profile", "-w", "x.pprof"}, "--type is required: wall|cpu|heap"},
		{"profile bad type", []string{"profile", "--type", "gpu", "-w", "x"}, `invalid --type "gpu"`},
		{"profile negative duration", []string{"profile", "--type", "cpu", "--duration", "-1s", "-w", "x"}, "--duration -1s is negative"},
		{"profile negative rate", []string{"profile", "--type", "cpu", "--rate", "-5", "-w", "x"}, "--rate -5 is negative"},
		{"profile --last not trace", []string{"profile", "--type", "cpu", "--last", "-w", "x"}, "--last applies to --type trace only"},
		{"profile stray argument", []string{"profile", "--type", "cpu", "-w", "x", "10s"}, `unknown command "10s"`},
		{"profile stdout and json", []string{"profile", "--type", "heap", "-w", "-", "-o", "json"}, "drop -o json"},
		{"profile bad target", []string{"profile", "--type", "heap", "-w", "x", "--target", "pod"}, `invalid --target "pod"`},
		{"goroutines bad path", []string{"goroutines", "--path", "fast"}, `invalid --path "fast"`},
		{"goroutines bad target", []string{"goroutines", "--target", "both"}, `invalid --target "both"`},
		{"goroutines negative min-wait", []string{"goroutines", "--min-wait", "-1m"}, "--min-wait -1m0s is negative"},
		{"goroutines bad filter", []string{"goroutines", "--filter", "a(b"}, "invalid --filter"},
		{"goroutines raw with file", []string{"goroutines", "--raw", "--file", "x"}, "--raw and --file cannot be combined"},
		{"goroutines raw with diff", []string{"goroutines", "--raw", "--diff", "x"}, "--raw prints the dump as it is"},
		{"goroutines raw with filter", []string{"goroutines", "--raw", "--filter", "x"}, "--raw prints the dump as it is"},
		{"goroutines raw json", []string{"goroutines", "--raw", "-o", "json"}, "--raw prints text"},
		{"goroutines raw profile path", []string{"goroutines", "--raw", "--path", "profile"}, "--raw is always the text path"},
		{"goroutines file with target", []string{"goroutines", "--file", "x", "--target", "app"}, "--file reads a dump instead"},
		{"goroutines save is diff", []string{"goroutines", "--save", "a.json", "--diff", "a.json"}, "name the same file"},
		{"goroutines fleet raw", []string{"goroutines", "deploy/x", "--raw"}, "work on one pod"},
		{"runtime bad target", []string{"runtime", "--target", "x"}, `invalid --target "x"`},
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
	for _, args := range [][]string{{"--help"}, {"proc", "--help"}, {"help", "explain"}, {}, {"goroutines", "--help"}, {"profile", "--help"}, {"runtime", "--help"}} {
		r := triage(t, nil, false, args...)
		if r.code != exitOK || r.stderr != "" || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("triage %v: code %d, stderr %q, stdout %.60q; want usage on stdout and 0", args, r.code, r.stderr, r.stdout)
		}
	}
}
