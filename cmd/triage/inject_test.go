package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

const workloads = "../../internal/inject/testdata/manifests/workloads.yaml"

func runInject(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, env{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin), getenv: func(string) string { return "" }})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// TestInjectCommand: `triage inject -f` writes the manifests back with the
// sidecar where the webhook would add it, says what it did on stderr, and
// changes nothing on a second pass.
func TestInjectCommand(t *testing.T) {
	labels := "triage.dev/injection=enabled,pod-security.kubernetes.io/enforce=restricted"
	r := runInject(t, "", "inject", "-f", workloads, "--namespace-labels", labels)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	docs := strings.Split(r.stdout, "\n---\n")
	src, err := os.ReadFile(workloads)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(string(src), "\nkind: "); len(docs) < want-1 || len(docs) > want+1 {
		t.Errorf("%d documents out, about %d in", len(docs), want)
	}
	injected := strings.Count(r.stderr, ": injected (")
	if injected == 0 || strings.Count(r.stdout, "name: triage-sidecar") != injected {
		t.Errorf("%d objects reported injected, %d sidecar containers in the output:\n%s", injected, strings.Count(r.stdout, "name: triage-sidecar"), r.stderr)
	}
	for _, want := range []string{"unchanged (hostNetwork pods are skipped)", "unchanged (pod label triage.dev/inject=false)", "capture withheld", "kube-system"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}

	again := runInject(t, r.stdout, "inject", "-f", "-", "--namespace-labels", labels)
	if again.code != exitOK || again.stdout != r.stdout {
		t.Errorf("a second pass changed the output (exit %d):\n%s", again.code, again.stderr)
	}

	// Without the namespace's labels only pods that opt in themselves change.
	plain := runInject(t, "", "inject", "-f", workloads)
	if plain.code != exitOK || strings.Count(plain.stdout, "name: triage-sidecar") >= injected {
		t.Errorf("without namespace labels: exit %d, %d sidecars", plain.code, strings.Count(plain.stdout, "name: triage-sidecar"))
	}
}

func TestInjectCommandErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inject"}, exitUsage, "-f FILE is required"},
		{[]string{"inject", "-f", workloads, "--namespace-labels", "=x"}, exitUsage, "--namespace-labels"},
		{[]string{"inject", "-f", "/nonexistent/app.yaml"}, exitError, "no such file"},
	}
	for _, c := range cases {
		r := runInject(t, "", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
	if r := runInject(t, "kind: [unclosed", "inject", "-f", "-"); r.code != exitError || !strings.Contains(r.stderr, "document 1") {
		t.Errorf("bad YAML: exit %d, %q", r.code, r.stderr)
	}
}
