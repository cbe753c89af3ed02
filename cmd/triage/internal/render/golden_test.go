package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name   string
		render func(*bytes.Buffer) error
	}{
		{"explain", func(b *bytes.Buffer) error { return Explain(b, fixtureExplain(), fixtureNow, Style{}) }},
		{"explain_empty", func(b *bytes.Buffer) error {
			return Explain(b, &triagev1.ExplainResponse{Build: &triagev1.Build{Version: "devel"}}, fixtureNow, Style{})
		}},
		{"proc_list", func(b *bytes.Buffer) error {
			return Processes(b, &triagev1.ListProcessesResponse{Processes: fixtureSummaries(), SelfPid: 31, KernelThreads: 52}, Style{})
		}},
		{"proc_detail", func(b *bytes.Buffer) error { return Process(b, fixtureProcess(), ProcessOptions{}, Style{}) }},
		{"proc_detail_deps_sockets", func(b *bytes.Buffer) error {
			p := fixtureProcess()
			p.Sockets.Sockets = []*triagev1.Socket{
				{Protocol: "tcp", LocalAddress: "0.0.0.0:8080", RemoteAddress: "0.0.0.0:0", State: "LISTEN", Inode: 1234},
				{Protocol: "tcp6", LocalAddress: "[::1]:8080", RemoteAddress: "[::1]:51234", State: "CLOSE_WAIT", Inode: 1240, RxQueue: 512},
			}
			return Process(b, p, ProcessOptions{Deps: true}, Style{})
		}},
		{"proc_detail_unavailable", func(b *bytes.Buffer) error {
			return Process(b, fixtureProcessUnavailable(), ProcessOptions{}, Style{})
		}},
		{"version", func(b *bytes.Buffer) error {
			return Version(b, &triagev1.Build{Version: "devel", GoVersion: "go1.26.0", Platform: "linux/amd64"}, fixtureExplain().Build, Style{})
		}},
		{"goroutines", func(b *bytes.Buffer) error { return Goroutines(b, fixtureGoroutines(), GoroutineOptions{}, Style{}) }},
		{"goroutines_full", func(b *bytes.Buffer) error {
			return Goroutines(b, fixtureGoroutines(), GoroutineOptions{MaxFrames: -1}, Style{})
		}},
		{"goroutines_profile_path", func(b *bytes.Buffer) error {
			return Goroutines(b, fixtureProfilePath(), GoroutineOptions{}, Style{})
		}},
		{"goroutines_json", func(b *bytes.Buffer) error { return WriteGoroutineDoc(b, GoroutineDocument(fixtureGoroutines())) }},
		{"goroutines_diff", func(b *bytes.Buffer) error { return GoroutineDiff(b, fixtureDiff(), GoroutineOptions{}, Style{}) }},
		{"goroutines_diff_json", func(b *bytes.Buffer) error { return WriteGoroutineDiffDoc(b, fixtureDiff()) }},
		{"runtime", func(b *bytes.Buffer) error { return Runtime(b, fixtureRuntime(), Style{}) }},
		{"runtime_gops", func(b *bytes.Buffer) error { return Runtime(b, fixtureRuntimeGops(), Style{}) }},
		{"explain_app", func(b *bytes.Buffer) error { return Explain(b, fixtureExplainApp(), fixtureNow, Style{}) }},
		{"explain_app_unreachable", func(b *bytes.Buffer) error {
			r := fixtureExplain()
			r.App = &triagev1.App{Source: "agent", Address: "/var/run/triage/agent.sock", Reason: "dial unix /var/run/triage/agent.sock: connect: no such file or directory: is the agent linked and the emptyDir shared?"}
			return Explain(b, r, fixtureNow, Style{})
		}},
		{"proc_detail_json", func(b *bytes.Buffer) error {
			return JSON(b, &triagev1.GetProcessResponse{Process: fixtureProcessUnavailable()})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.render(&b); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b.Bytes(), []byte("\x1b[")) {
				t.Error("plain style wrote ANSI escapes")
			}
			for i, line := range strings.Split(b.String(), "\n") {
				if strings.TrimRight(line, " ") != line {
					t.Errorf("line %d has trailing space: %q", i+1, line)
				}
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}
