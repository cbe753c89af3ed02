package runtime_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/triage-sh/triage/client"
	"github.com/triage-sh/triage/internal/gops"
	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
	"github.com/triage-sh/triage/sidecar"
	"github.com/triage-sh/triage/sidecar/capability"
	"github.com/triage-sh/triage/sidecar/explain"
	"github.com/triage-sh/triage/sidecar/process"
	"github.com/triage-sh/triage/sidecar/runtime"
	"github.com/triage-sh/triage/sidecar/sidecartest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// build compiles the test subjects once per test binary.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "triage-runtime-test")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{"../agent/internal/testapp", "./internal/gopsapp"} {
			out, err := exec.Command("go", "build", "-o", binDir, pkg).CombinedOutput()
			if err != nil {
				buildErr = err
				binDir = string(out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build test subjects: %v\n%s", buildErr, binDir)
	}
	return binDir
}

// startChild runs a test subject until the test ends and waits for "ready".
func startChild(t *testing.T, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(build(t), name), args...)
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() == "ready" {
			go io.Copy(io.Discard, stdout)
			return cmd
		}
	}
	t.Fatalf("%s did not get ready", name)
	return nil
}

// startSidecar serves explain, process and runtime with o, in dev mode.
func startSidecar(t *testing.T, o runtime.Options) *client.Client {
	t.Helper()
	dev := t.TempDir()
	so := sidecar.DefaultOptions()
	so.Addr, so.Dev = "127.0.0.1:0", dev
	caps := []capability.Capability{explain.Capability(), process.Capability(), {
		Name:     "runtime",
		Register: func(s grpc.ServiceRegistrar, d capability.Deps) (func(), error) { return runtime.Register(s, d, o) },
	}}
	srv := sidecartest.Serve(t, sidecar.Config{Options: so, Capabilities: caps, AuditWriter: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	c, err := client.Dial(context.Background(), client.Options{Addr: srv.Addrs()[0].String(), Dev: dev, Timeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return c
}

// counts sums group counts by the first frame whose function has prefix "main.".
func counts(groups []*triagev1.GoroutineGroup) map[string]int64 {
	out := map[string]int64{}
	for _, g := range groups {
		for _, f := range g.Frames {
			if strings.HasPrefix(f.Function, "main.") {
				out[f.Function+"|"+g.State] += g.Count
				break
			}
		}
	}
	return out
}

func TestAppThroughAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	app := startChild(t, []string{"TRIAGE_AGENT_SOCKET=" + sock}, "testapp", "-a", "300", "-b", "200", "-c", "100", "-config")
	o := runtime.DefaultOptions()
	o.AgentSocket = sock
	c := startSidecar(t, o)

	// The default path: the goroutine profile, grouped exactly, no states.
	sum, groups, err := c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Source != "agent" || sum.Path != triagev1.GoroutinePath_GOROUTINE_PATH_PROFILE || sum.Total < 600 || sum.Pid != int32(app.Process.Pid) {
		t.Fatalf("summary %v", sum)
	}
	got := counts(groups)
	for k, want := range map[string]int64{"main.waitA|": 300, "main.waitB|": 200, "main.waitC|": 100} {
		if got[k] != want {
			t.Errorf("profile path %s: %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
	// The text path: the same counts, with wait states.
	sum, groups, err = c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{Path: triagev1.GoroutinePath_GOROUTINE_PATH_TEXT, Filter: `main\.wait`})
	if err != nil {
		t.Fatal(err)
	}
	got = counts(groups)
	for k, want := range map[string]int64{"main.waitA|chan receive": 300, "main.waitB|sync.Mutex.Lock": 200, "main.waitC|sleep": 100} {
		if got[k] != want {
			t.Errorf("text path %s: %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
	if sum.Matched != 600 {
		t.Errorf("filtered matched %d, want 600", sum.Matched)
	}

	// A heap profile that pprof reads.
	var buf bytes.Buffer
	if _, err := c.Profile(ctx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_HEAP}, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.Parse(&buf); err != nil {
		t.Fatalf("heap profile: %v", err)
	}

	// Limits, checked by the sidecar before the app is asked.
	_, err = c.Profile(ctx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_WALL, Duration: durationpb.New(time.Hour)}, io.Discard)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "--max-profile-duration") {
		t.Errorf("hour-long profile: %v", err)
	}

	// One wall or CPU profile at a time: the second names the holder.
	first := make(chan error, 1)
	running := make(chan struct{})
	go func() {
		_, err := c.Profile(ctx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_WALL, Duration: durationpb.New(2 * time.Second)}, io.Discard,
			client.OnHeader(func(*triagev1.ArtifactHeader) error { close(running); return nil }))
		first <- err
	}()
	<-running // the agent sends the header once the profile runs
	_, busy := c.Profile(ctx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_CPU, Duration: durationpb.New(100 * time.Millisecond)}, io.Discard)
	if status.Code(busy) != codes.ResourceExhausted || !strings.Contains(busy.Error(), "spiffe://triage.dev/dev/operator") {
		t.Errorf("second profile: %v, want ResourceExhausted naming the holder", busy)
	}
	if err := <-first; err != nil {
		t.Errorf("first profile: %v", err)
	}

	// Stats and explain.
	st, err := c.RuntimeStats(ctx(t), triagev1.Target_TARGET_APP)
	if err != nil {
		t.Fatal(err)
	}
	if st.Source != "agent" || st.Goroutines < 600 || st.Pid != int32(app.Process.Pid) || st.Build.GetPath() == "" || st.HeapLiveBytes == 0 {
		t.Errorf("stats %v", st)
	}
	ex, err := c.Explain(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !ex.App.GetReachable() || ex.App.Pid != int32(app.Process.Pid) || len(ex.App.Config) == 0 {
		t.Fatalf("explain app %v", ex.App)
	}
	for _, r := range append(ex.App.Config, ex.App.State...) {
		if strings.Contains(r.Json, "hunter2") || strings.Contains(r.Json, "sk_live") {
			t.Errorf("a secret leaked through explain: %s", r.Json)
		}
	}

	// The agent goes away: Unavailable naming the socket; the sidecar keeps serving.
	app.Process.Kill()
	app.Wait()
	_, _, err = c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), sock) {
		t.Errorf("agent gone: %v, want Unavailable naming %s", err, sock)
	}
	ex, err = c.Explain(ctx(t))
	if err != nil {
		t.Fatalf("explain without the agent: %v", err)
	}
	if ex.App.GetReachable() || !hasFinding(ex, "agent-unreachable") {
		t.Errorf("explain without the agent: app %v findings %v", ex.App, ex.Findings)
	}
	if _, _, err := c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{Target: triagev1.Target_TARGET_SELF}); err != nil {
		t.Errorf("self while the app is gone: %v", err)
	}
}

func hasFinding(ex *triagev1.ExplainResponse, code string) bool {
	for _, f := range ex.Findings {
		if f.Code == code {
			return true
		}
	}
	return false
}

func TestSelfWithoutApp(t *testing.T) {
	c := startSidecar(t, runtime.DefaultOptions())
	sum, groups, err := c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Source != "self" || len(groups) == 0 {
		t.Fatalf("self: %v", sum)
	}
	_, _, err = c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{Target: triagev1.Target_TARGET_APP})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "--agent-socket") {
		t.Fatalf("app without one: %v", err)
	}
	_, _, err = c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{Filter: "("})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad filter: %v", err)
	}
	var buf bytes.Buffer
	if _, err := c.Profile(ctx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_WALL, Duration: durationpb.New(500 * time.Millisecond)}, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.Parse(&buf); err != nil {
		t.Fatalf("self wall profile: %v", err)
	}
	if _, err := c.Profile(ctx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_CPU, Last: true}, io.Discard); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("last on a cpu profile: %v", err)
	}
}

func TestAppThroughGops(t *testing.T) {
	dir := t.TempDir()
	app := startChild(t, []string{"GOPS_CONFIG_DIR=" + dir}, "gopsapp", "-n", "40")
	addr, err := gops.FindAddr(app.Process.Pid, "/proc")
	if err != nil {
		t.Fatal(err)
	}
	o := runtime.DefaultOptions()
	o.GopsAddr = addr
	c := startSidecar(t, o)
	sum, groups, err := c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Source != "gops" || sum.Path != triagev1.GoroutinePath_GOROUTINE_PATH_TEXT {
		t.Fatalf("summary %v", sum)
	}
	if got := counts(groups)["main.parked|chan receive"]; got != 40 {
		t.Fatalf("main.parked: %d, want 40 (%v)", got, counts(groups))
	}
	_, err = c.Profile(ctx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_WALL, Duration: durationpb.New(time.Second)}, io.Discard)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "triage agent") {
		t.Fatalf("wall via gops: %v", err)
	}
	var buf bytes.Buffer
	if _, err := c.Profile(ctx(t), &triagev1.ProfileRequest{Type: triagev1.ProfileType_PROFILE_TYPE_HEAP}, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.Parse(&buf); err != nil {
		t.Fatalf("gops heap profile: %v", err)
	}
	st, err := c.RuntimeStats(ctx(t), triagev1.Target_TARGET_APP)
	if err != nil || st.Source != "gops" || !strings.HasPrefix(st.GoVersion, "go1.") || len(st.Unavailable) == 0 {
		t.Fatalf("gops stats %v %v", st, err)
	}

	// Found through its port file instead of an address.
	o = runtime.DefaultOptions()
	o.GopsPID = app.Process.Pid
	c = startSidecar(t, o)
	if _, groups, err := c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{}); err != nil || counts(groups)["main.parked|chan receive"] != 40 {
		t.Fatalf("gops by pid: %v %v", counts(groups), err)
	}
	o.GopsPID = 999999999
	c = startSidecar(t, o)
	if _, _, err := c.Goroutines(ctx(t), &triagev1.GetGoroutinesRequest{}); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "--gops-addr") {
		t.Fatalf("gops by a pid without one: %v", err)
	}
}
