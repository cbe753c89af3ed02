package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// allowedDeps are the non-standard packages the agent may pull into an app:
// grpc and protobuf (and grpc's own dependencies), fgprof and its pprof
// encoder, and the generated agent API.
var allowedDeps = []string{
	"google.golang.org/grpc",
	"google.golang.org/protobuf",
	"google.golang.org/genproto/googleapis/rpc",
	"golang.org/x/net",
	"golang.org/x/sys",
	"golang.org/x/text",
	"github.com/felixge/fgprof",
	"github.com/google/pprof/profile",
	"github.com/triage-sh/triage/proto/triage/agent/v1",
	"github.com/triage-sh/triage/sidecar/agent",
}

func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}",
		"github.com/triage-sh/triage/sidecar/agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var offenders []string
	for _, p := range strings.Fields(string(out)) {
		if !allowed(p) {
			offenders = append(offenders, p)
		}
	}
	if len(offenders) > 0 {
		t.Errorf("the agent depends on packages outside stdlib, grpc, protobuf and fgprof:\n  %s", strings.Join(offenders, "\n  "))
	}
}

func allowed(p string) bool {
	for _, a := range allowedDeps {
		if p == a || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}

// TestDependenciesCanFail keeps the allow-list honest: near misses are out.
func TestDependenciesCanFail(t *testing.T) {
	for _, p := range []string{"github.com/triage-sh/triage/internal/redact", "github.com/google/pprof/driver", "golang.org/x/crypto/ssh", "google.golang.org/grpcx"} {
		if allowed(p) {
			t.Errorf("%s is allowed", p)
		}
	}
}
