package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/triage-sh/triage/proto/triage/agent/v1"
)

// buildDir holds the test program, built once per test binary.
var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "triage-agent-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}))
}

var (
	buildOnce sync.Once
	buildErr  error
)

// testApp builds internal/testapp once and returns its path.
func testApp(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(buildDir, "testapp")
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", bin, "./internal/testapp").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./internal/testapp: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// child is a running testapp.
type child struct {
	cmd    *exec.Cmd
	socket string
	stdin  io.Closer
}

// startChild runs testapp with args and waits for "ready".
func startChild(t testing.TB, args ...string) *child {
	t.Helper()
	bin := testApp(t)
	socket := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), SocketEnv+"="+socket)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, socket: socket, stdin: stdin}
	t.Cleanup(func() { c.stop(t) })
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected first line %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("testapp %v: %v; stderr: %s", args, err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("testapp %v did not get ready; stderr: %s", args, stderr.String())
	}
	return c
}

func (c *child) stop(t testing.TB) {
	_ = c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
		t.Errorf("testapp did not exit when its stdin closed")
	}
}

// dial connects to an agent's Unix socket; the connection closes with the test.
func dial(t testing.TB, socket string) agentv1.AgentServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return agentv1.NewAgentServiceClient(conn)
}

// startAgent runs an in-process agent on a socket in a temp dir.
func startAgent(t testing.TB, o Options) (*Agent, agentv1.AgentServiceClient) {
	t.Helper()
	if o.Socket == "" && o.Listener == nil {
		o.Socket = filepath.Join(t.TempDir(), "agent.sock")
	}
	a, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})
	return a, dial(t, a.Addr().String())
}

// testCtx bounds every test's RPCs.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

type part interface {
	GetHeader() *agentv1.Header
	GetChunk() *agentv1.Chunk
	GetTrailer() *agentv1.Trailer
}

// artifactResult is a received artifact stream.
type artifactResult struct {
	header  *agentv1.Header
	data    []byte
	trailer *agentv1.Trailer
}

// collect reads an artifact stream, checking its shape: a header first,
// chunks of at most 64 KiB, a trailer last whose byte count matches.
func collect[M part](t testing.TB, recv func() (M, error)) (artifactResult, error) {
	t.Helper()
	var r artifactResult
	for i := 0; ; i++ {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r, err
		}
		switch {
		case m.GetHeader() != nil:
			if i != 0 {
				t.Errorf("header at message %d", i)
			}
			r.header = m.GetHeader()
		case m.GetChunk() != nil:
			if r.header == nil {
				t.Errorf("chunk before the header")
			}
			if n := len(m.GetChunk().GetData()); n > maxChunk || n == 0 {
				t.Errorf("chunk of %d bytes", n)
			}
			r.data = append(r.data, m.GetChunk().GetData()...)
		case m.GetTrailer() != nil:
			r.trailer = m.GetTrailer()
		}
	}
	if r.header == nil || r.trailer == nil {
		t.Fatalf("stream without header or trailer")
	}
	if r.trailer.GetBytes() != uint64(len(r.data)) {
		t.Errorf("trailer says %d bytes, got %d", r.trailer.GetBytes(), len(r.data))
	}
	return r, nil
}

// profileOf asks for a profile and collects it.
func profileOf(t testing.TB, ctx context.Context, c agentv1.AgentServiceClient, req *agentv1.ProfileRequest) (artifactResult, error) {
	t.Helper()
	s, err := c.Profile(ctx, req)
	if err != nil {
		return artifactResult{}, err
	}
	return collect(t, s.Recv)
}

func goroutinesOf(t testing.TB, ctx context.Context, c agentv1.AgentServiceClient, f agentv1.GoroutineFormat) artifactResult {
	t.Helper()
	s, err := c.GetGoroutines(ctx, &agentv1.GetGoroutinesRequest{Format: f})
	if err != nil {
		t.Fatal(err)
	}
	r, err := collect(t, s.Recv)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func req(typ agentv1.ProfileType, d time.Duration) *agentv1.ProfileRequest {
	r := &agentv1.ProfileRequest{Type: typ, Holder: "test"}
	if d != 0 {
		r.Duration = durationpb.New(d)
	}
	return r
}

func wantCode(t testing.TB, err error, code codes.Code, contains ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
	for _, s := range contains {
		if !strings.Contains(status.Convert(err).Message(), s) {
			t.Errorf("message %q does not contain %q", status.Convert(err).Message(), s)
		}
	}
}

// procStatus reads a field of /proc/PID/status in kB.
func procRSSKiB(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// procCPUTicks is utime+stime of a process, in clock ticks (1/100 s).
func procCPUTicks(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}
