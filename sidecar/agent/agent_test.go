package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// In-process tests: the agent in the test binary, over a real Unix socket.

func TestSocketMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "triage")
	a, client := startAgent(t, Options{Socket: filepath.Join(dir, "agent.sock")})
	fi, err := os.Stat(a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want socket 0660", fi.Mode())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o750 {
		t.Errorf("directory %v %v, want 0750", di.Mode(), err)
	}
	if _, err := client.GetInfo(testCtx(t), &agentv1.GetInfoRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(a.Addr().String()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after Close: %v", err)
	}
}

func TestSocketFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env.sock")
	t.Setenv(SocketEnv, path)
	a, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Addr().String() != path {
		t.Errorf("serving on %s, want %s", a.Addr(), path)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the socket file stays; nobody accepts on it
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	_, client := startAgent(t, Options{Socket: path})
	if _, err := client.GetInfo(testCtx(t), &agentv1.GetInfoRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestLiveSocketRefused(t *testing.T) {
	a, _ := startAgent(t, Options{})
	_, err := Start(t.Context(), Options{Socket: a.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "another process serves") {
		t.Fatalf("second agent on a live socket: %v", err)
	}
	// A regular file is not replaced either.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(t.Context(), Options{Socket: file}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("agent on a regular file: %v", err)
	}
}

// TestListener serves over an in-memory listener, as the sidecar does for itself.
func TestListener(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	a, err := Start(t.Context(), Options{Listener: lis, Version: "v9"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	conn, err := grpc.NewClient("passthrough:///self",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	info, err := agentv1.NewAgentServiceClient(conn).GetInfo(testCtx(t), &agentv1.GetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetPid() != int32(os.Getpid()) || info.GetAgentVersion() != "v9" || info.GetGoVersion() != runtime.Version() ||
		!strings.Contains(info.GetBuildInfoJson(), `"GoVersion"`) || info.GetFlightRecorder() {
		t.Errorf("info %v", info)
	}
}

// TestContextStops: the agent stops when Start's context ends.
func TestContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	path := filepath.Join(t.TempDir(), "agent.sock")
	a, err := Start(ctx, Options{Socket: path})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socket still there after the context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOneProfileAtATime(t *testing.T) {
	_, client := startAgent(t, Options{})
	ctx := testCtx(t)
	first := make(chan error, 1)
	r := req(agentv1.ProfileType_PROFILE_TYPE_WALL, 3*time.Second)
	r.Holder = "alice"
	s, err := client.Profile(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil { // the header: the profile runs
		t.Fatal(err)
	}
	go func() { // drain the rest; t.Fatal is not for other goroutines
		for {
			if _, err := s.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				first <- err
				return
			}
		}
	}()
	_, err = profileOf(t, ctx, client, req(agentv1.ProfileType_PROFILE_TYPE_CPU, time.Second))
	wantCode(t, err, codes.ResourceExhausted, "wall profile for alice", "running for", "of 3s")
	info, err := client.GetInfo(ctx, &agentv1.GetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info.GetExclusiveBusy(), "alice") {
		t.Errorf("exclusive_busy %q", info.GetExclusiveBusy())
	}
	// Snapshots are not exclusive.
	if _, err := profileOf(t, ctx, client, req(agentv1.ProfileType_PROFILE_TYPE_HEAP, 0)); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := profileOf(t, ctx, client, req(agentv1.ProfileType_PROFILE_TYPE_CPU, 200*time.Millisecond)); err != nil {
		t.Fatalf("after the first ended: %v", err)
	}
}

// TestCancelStopsProfile: a client that goes away stops the profile at
// once; the next profile works and goleak (TestMain) finds nothing left.
func TestCancelStopsProfile(t *testing.T) {
	_, client := startAgent(t, Options{})
	for _, typ := range []agentv1.ProfileType{agentv1.ProfileType_PROFILE_TYPE_WALL, agentv1.ProfileType_PROFILE_TYPE_CPU,
		agentv1.ProfileType_PROFILE_TYPE_TRACE, agentv1.ProfileType_PROFILE_TYPE_MUTEX} {
		ctx, cancel := context.WithCancel(testCtx(t))
		s, err := client.Profile(ctx, req(typ, 25*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if typ != agentv1.ProfileType_PROFILE_TYPE_MUTEX { // mutex sends its header at the end
			if _, err := s.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		// The next one gets the slot as soon as the agent has noticed.
		var lastErr error
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			_, lastErr = profileOf(t, testCtx(t), client, req(typ, 100*time.Millisecond))
			if lastErr == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if lastErr != nil {
			t.Fatalf("%v after a cancelled one: %v", typ, lastErr)
		}
	}
	if runtime.SetMutexProfileFraction(-1) != 0 {
		t.Error("mutex fraction not restored after a cancelled profile")
	}
}

func TestDurationLimits(t *testing.T) {
	_, client := startAgent(t, Options{MaxProfileDuration: 10 * time.Second})
	ctx := testCtx(t)
	for _, c := range []struct {
		typ  agentv1.ProfileType
		d    time.Duration
		want string
	}{
		{agentv1.ProfileType_PROFILE_TYPE_WALL, 0, "(0s, 10s]"},
		{agentv1.ProfileType_PROFILE_TYPE_CPU, 11 * time.Second, "(0s, 10s]"},
		{agentv1.ProfileType_PROFILE_TYPE_BLOCK, -time.Second, "(0s, 10s]"},
		{agentv1.ProfileType_PROFILE_TYPE_TRACE, 31 * time.Second, "(0s, 30s]"},
	} {
		_, err := profileOf(t, ctx, client, req(c.typ, c.d))
		wantCode(t, err, codes.InvalidArgument, c.want)
	}
	_, err := profileOf(t, ctx, client, req(agentv1.ProfileType_PROFILE_TYPE_UNSPECIFIED, time.Second))
	wantCode(t, err, codes.InvalidArgument)
	_, err = profileOf(t, ctx, client, &agentv1.ProfileRequest{Type: agentv1.ProfileType_PROFILE_TYPE_CPU, Last: true})
	wantCode(t, err, codes.InvalidArgument, "traces only")
	_, err = profileOf(t, ctx, client, &agentv1.ProfileRequest{Type: agentv1.ProfileType_PROFILE_TYPE_TRACE, Last: true})
	wantCode(t, err, codes.FailedPrecondition, "FlightRecorder: true")
}

// blockOnce blocks on a channel for a while from a stack of its own.
func blockOnce() {
	c := make(chan struct{})
	go func() { time.Sleep(20 * time.Millisecond); close(c) }()
	<-c
}

// contendOnce makes one contended mutex unlock.
func contendOnce() {
	var mu sync.Mutex
	mu.Lock()
	done := make(chan struct{})
	go func() {
		mu.Lock()
		//lint:ignore SA2001 the contention is the point: the mutex profile records it
		mu.Unlock()
		close(done)
	}()
	time.Sleep(10 * time.Millisecond)
	mu.Unlock()
	<-done
}

func TestBlockAndMutexRatesRestored(t *testing.T) {
	_, client := startAgent(t, Options{})
	ctx := testCtx(t)
	runtime.SetMutexProfileFraction(3)
	defer runtime.SetMutexProfileFraction(0)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				blockOnce()
				contendOnce()
			}
		}
	})
	block, err := profileOf(t, ctx, client, req(agentv1.ProfileType_PROFILE_TYPE_BLOCK, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// Every contention event (rate 1): at the default 1 in 10, a 500ms window
	// of about 17 events records none about a sixth of the time.
	mreq := req(agentv1.ProfileType_PROFILE_TYPE_MUTEX, 500*time.Millisecond)
	mreq.Rate = 1
	mutex, err := profileOf(t, ctx, client, mreq)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]artifactResult{"block": block, "mutex": mutex} {
		if r.trailer.GetCounters()["samples"] == 0 {
			t.Errorf("%s profile recorded nothing: %v", name, r.trailer)
		}
	}
	if got := runtime.SetMutexProfileFraction(-1); got != 3 {
		t.Errorf("mutex fraction %d after the profile, want the app's 3", got)
	}
	if mutex.header.GetAttributes()["restored_fraction"] != "3" {
		t.Errorf("mutex header %v", mutex.header.GetAttributes())
	}
	// The block rate is back to 0: a new blocking event is not recorded.
	before := pprof.Lookup("block").Count()
	blockOnce()
	if after := pprof.Lookup("block").Count(); after != before {
		t.Errorf("block profile grew from %d to %d records after the profile: rate not restored", before, after)
	}
}

func TestSnapshotsAndGoroutines(t *testing.T) {
	_, client := startAgent(t, Options{})
	ctx := testCtx(t)
	for _, typ := range []agentv1.ProfileType{agentv1.ProfileType_PROFILE_TYPE_HEAP, agentv1.ProfileType_PROFILE_TYPE_ALLOCS,
		agentv1.ProfileType_PROFILE_TYPE_GOROUTINE, agentv1.ProfileType_PROFILE_TYPE_THREADCREATE} {
		r, err := profileOf(t, ctx, client, req(typ, 0))
		if err != nil {
			t.Fatalf("%v: %v", typ, err)
		}
		if len(r.data) < 2 || r.data[0] != 0x1f || r.data[1] != 0x8b {
			t.Errorf("%v is not gzipped", typ)
		}
	}
}

func TestRuntimeStats(t *testing.T) {
	_, client := startAgent(t, Options{})
	resp, err := client.GetRuntimeStats(testCtx(t), &agentv1.GetRuntimeStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range resp.GetMetrics() {
		names[m.GetName()] = true
	}
	for _, n := range []string{"/gc/heap/goal:bytes", "/sched/latencies:seconds", "/gc/gogc:percent", "/sched/goroutines:goroutines"} {
		if !names[n] {
			t.Errorf("metric %s missing", n)
		}
	}
	if resp.GetGomaxprocs() != int32(runtime.GOMAXPROCS(0)) || resp.GetNumGoroutine() <= 0 || resp.GetGogc() != 100 ||
		resp.GetGomemlimitBytes() <= 0 || resp.GetUptime().AsDuration() <= 0 {
		t.Errorf("stats gomaxprocs %d goroutines %d gogc %d gomemlimit %d uptime %v", resp.GetGomaxprocs(), resp.GetNumGoroutine(),
			resp.GetGogc(), resp.GetGomemlimitBytes(), resp.GetUptime())
	}
}

func TestRegisteredInProcess(t *testing.T) {
	a, client := startAgent(t, Options{CallbackTimeout: 200 * time.Millisecond})
	a.RegisterConfig("db", func() any { return map[string]any{"host": "h", "dsn": "postgres://u:p@h"} })
	a.RegisterState("panics", func() any { panic("boom") })
	release := make(chan struct{})
	a.RegisterState("slow", func() any { <-release; return 1 })
	a.RegisterState("bad", func() any { return func() {} })
	resp, err := client.GetRegistered(testCtx(t), &agentv1.GetRegisteredRequest{})
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.GetConfig()[0]; c.GetJson() != `{"dsn":"[redacted]","host":"h"}` || c.GetRedacted()[0] != "dsn" {
		t.Errorf("config %v", c)
	}
	errs := map[string]string{}
	for _, s := range resp.GetState() {
		errs[s.GetName()] = s.GetError()
	}
	if !strings.Contains(errs["panics"], "boom") || !strings.Contains(errs["slow"], "did not return within 200ms") ||
		!strings.Contains(errs["bad"], "unsupported type") {
		t.Errorf("state errors %q", errs)
	}
	info, err := client.GetInfo(testCtx(t), &agentv1.GetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(info.GetRegisteredConfig(), ",") != "db" || strings.Join(info.GetRegisteredState(), ",") != "panics,slow,bad" {
		t.Errorf("info names %v %v", info.GetRegisteredConfig(), info.GetRegisteredState())
	}
}

// TestHandlerPanicRecovered: a panic inside a handler is Internal, and the
// agent keeps serving.
func TestHandlerPanicRecovered(t *testing.T) {
	a, client := startAgent(t, Options{})
	a.registry.mu.Lock()
	a.registry.entries[kindConfig] = nil
	a.registry.mu.Unlock()
	// Force a panic in the unary path through the interceptor directly.
	_, err := a.recoverUnary(t.Context(), nil, &grpc.UnaryServerInfo{FullMethod: "/x"}, func(context.Context, any) (any, error) { panic("handler bug") })
	wantCode(t, err, codes.Internal, "recovered")
	if _, err := client.GetInfo(testCtx(t), &agentv1.GetInfoRequest{}); err != nil {
		t.Fatal(err)
	}
}
