package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/triage-sh/triage/internal/inject"
)

// TestDockerfiles checks what can be checked without a Docker engine: every
// image is a static, stripped, reproducible build on distroless nonroot that
// runs as 65532, and the sidecar image has its binaries where the injector's
// probe and the sidecar's worker lookup expect them.
func TestDockerfiles(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy", "docker")
	want := map[string][]string{ // Dockerfile -> the binaries it installs in /
		"Dockerfile.sidecar":  {"triage-sidecar", "triage-envoy"},
		"Dockerfile.injector": {"triage-injector"},
		"Dockerfile.cli":      {"triage"},
		"Dockerfile.demo":     {"triage-demo"},
	}
	for name, bins := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		df := string(b)
		froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
		if len(froms) < 2 {
			t.Errorf("%s: want a multi-stage build, got %d FROM lines", name, len(froms))
			continue
		}
		if !strings.HasPrefix(froms[0][1], "golang:1.26") {
			t.Errorf("%s: builder %s, want golang:1.26", name, froms[0][1])
		}
		if last := froms[len(froms)-1][1]; last != "gcr.io/distroless/static-debian12:nonroot" {
			t.Errorf("%s: runtime image %s, want gcr.io/distroless/static-debian12:nonroot", name, last)
		}
		for _, s := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w`} {
			if !strings.Contains(df, s) {
				t.Errorf("%s: lacks %s", name, s)
			}
		}
		users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
		if len(users) == 0 || !strings.HasPrefix(users[len(users)-1][1], "65532") {
			t.Errorf("%s: final USER is not 65532", name)
		}
		for _, bin := range bins {
			if !regexp.MustCompile(`-o /out/` + regexp.QuoteMeta(bin) + `\s`).MatchString(df) {
				t.Errorf("%s: does not build %s", name, bin)
			}
			if !regexp.MustCompile(`(?m)^COPY --from=\S+ .*/out/` + regexp.QuoteMeta(bin) + `\s.*/\S*$`).MatchString(df) {
				t.Errorf("%s: does not copy %s into the image", name, bin)
			}
		}
	}
	sidecar, _ := os.ReadFile(filepath.Join(dir, "Dockerfile.sidecar"))
	if probe := inject.DefaultConfig().ProbeCommand[0]; !strings.Contains(string(sidecar), `ENTRYPOINT ["`+probe+`"]`) {
		t.Errorf("Dockerfile.sidecar: the injector's startup probe runs %s; the image's entrypoint differs", probe)
	}
	if !strings.Contains(string(sidecar), "setcap cap_net_raw+p ") || regexp.MustCompile(`setcap \S*\+\S*e`).Match(sidecar) {
		t.Errorf("Dockerfile.sidecar: /triage-sidecar must carry cap_net_raw as permitted only (+p, never +ep)")
	}
}
