package procfs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv switches the test binary into a child mode (see TestMain).
const childEnv = "TRIAGE_PROCFS_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "hold":
		os.Exit(holdChild())
	case "read":
		os.Exit(readChild())
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", childEnv, os.Getenv(childEnv))
		os.Exit(2)
	}
}

// holdSpec is what a hold child opens, passed as JSON in TRIAGE_PROCFS_SPEC.
type holdSpec struct {
	File     string // a regular file to open Files times
	Files    int
	Dirs     int // opens of "/"
	DevNulls int
	Pipes    int // each is two descriptors
	TCP      int // listeners on 127.0.0.1:0
	Conns    int // loopback connections, each two ESTABLISHED sockets
	UDP      int // sockets bound to 127.0.0.1:0
	Unix     int // socket pairs, each two sockets
	Netlink  int
}

// holdReport is what a hold child prints when ready.
type holdReport struct {
	TCPPorts []int
	UDPPorts []int
}

// holdChild opens what TRIAGE_PROCFS_SPEC says, prints a holdReport line,
// and holds it all until stdin closes.
func holdChild() int {
	var spec holdSpec
	if err := json.Unmarshal([]byte(os.Getenv("TRIAGE_PROCFS_SPEC")), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// Start the network poller (an epoll and an eventfd) in every child,
	// control included, so that it is part of the baseline.
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r.Close()
	w.Close()

	var keep []any
	var report holdReport
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 2 }
	for range spec.Files {
		f, err := os.Open(spec.File)
		if err != nil {
			return fail(err)
		}
		keep = append(keep, f)
	}
	for range spec.Dirs {
		f, err := os.Open("/")
		if err != nil {
			return fail(err)
		}
		keep = append(keep, f)
	}
	for range spec.DevNulls {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return fail(err)
		}
		keep = append(keep, f)
	}
	for range spec.Pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		keep = append(keep, r, w)
	}
	for range spec.TCP {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		keep = append(keep, l)
		report.TCPPorts = append(report.TCPPorts, l.Addr().(*net.TCPAddr).Port)
	}
	if spec.Conns > 0 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		for range spec.Conns {
			c, err := net.Dial("tcp4", l.Addr().String())
			if err != nil {
				return fail(err)
			}
			s, err := l.Accept()
			if err != nil {
				return fail(err)
			}
			keep = append(keep, c, s)
		}
		l.Close()
	}
	for range spec.UDP {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		keep = append(keep, c)
		report.UDPPorts = append(report.UDPPorts, c.LocalAddr().(*net.UDPAddr).Port)
	}
	for range spec.Unix {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		keep = append(keep, fds)
	}
	for range spec.Netlink {
		fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
		if err != nil {
			return fail(err)
		}
		keep = append(keep, fd)
	}
	if err := json.NewEncoder(os.Stdout).Encode(report); err != nil {
		return fail(err)
	}
	io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
	_ = keep
	return 0
}

// readChild reads TRIAGE_PROCFS_PID with New("", "") and prints the
// Process as JSON: the unprivileged reader of TestUnprivilegedReader.
func readChild() int {
	pid, err := strconv.Atoi(os.Getenv("TRIAGE_PROCFS_PID"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p, err := New("", "").Process(pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(p); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// quickExit stops a race-enabled child from sleeping a second at exit.
var quickExit = "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")

// child is a running hold child.
type child struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	report holdReport
}

// startHold starts a hold child with spec and waits until it is ready.
// The child exits when the test ends.
func startHold(t *testing.T, spec holdSpec, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=hold", "TRIAGE_PROCFS_SPEC="+string(js), "CHILD_API_TOKEN=s3cret", quickExit)
	cmd.Stderr = os.Stderr
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
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("child did not get ready: %v", err)
	}
	if err := json.Unmarshal(line, &c.report); err != nil {
		t.Fatalf("child report %q: %v", line, err)
	}
	return c
}

// pid is the child's pid.
func (c *child) pid() int { return c.cmd.Process.Pid }

// diffKinds returns got minus base, without zero entries.
func diffKinds(got, base map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range got {
		out[k] += v
	}
	for k, v := range base {
		out[k] -= v
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// TestLiveChildren starts children that open known descriptors and sockets
// and checks the counts exactly, relative to a control child that opened
// nothing.
func TestLiveChildren(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fsys := New("", "")
	control := startHold(t, holdSpec{})
	base, err := fsys.Process(control.pid())
	if err != nil {
		t.Fatal(err)
	}
	if base.FDs == nil || base.Sockets == nil {
		t.Fatalf("control child: fds %v sockets %v, unavailable %v", base.FDs, base.Sockets, base.Unavailable)
	}
	if n := len(base.FDs.SocketInodes); n != 0 {
		t.Fatalf("control child has %d sockets, want 0", n)
	}

	tests := []struct {
		name string
		spec holdSpec
	}{
		{"files", holdSpec{File: file, Files: 3, Dirs: 2, DevNulls: 1}},
		{"pipes", holdSpec{Pipes: 4}},
		{"tcp and udp", holdSpec{TCP: 3, UDP: 2}},
		{"everything", holdSpec{File: file, Files: 5, Dirs: 1, DevNulls: 2, Pipes: 3, TCP: 2, Conns: 2, UDP: 3, Unix: 2, Netlink: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			c := startHold(t, s, "procfs-child", "an arg with spaces")
			p, err := fsys.Process(c.pid())
			if err != nil {
				t.Fatal(err)
			}
			if p.FDs == nil || p.Sockets == nil {
				t.Fatalf("fds %v sockets %v, unavailable %v", p.FDs, p.Sockets, p.Unavailable)
			}
			sockets := s.TCP + 2*s.Conns + s.UDP + 2*s.Unix + s.Netlink
			wantKinds := map[string]int{
				KindFile: s.Files, KindDir: s.Dirs, KindChar: s.DevNulls, KindPipe: 2 * s.Pipes, KindSocket: sockets,
			}
			for k, v := range wantKinds {
				if v == 0 {
					delete(wantKinds, k)
				}
			}
			if got := diffKinds(p.FDs.ByKind, base.FDs.ByKind); !reflect.DeepEqual(got, wantKinds) {
				t.Errorf("by kind minus control = %v, want %v (child %v, control %v)", got, wantKinds, p.FDs.ByKind, base.FDs.ByKind)
			}
			wantOpen := s.Files + s.Dirs + s.DevNulls + 2*s.Pipes + sockets
			if got := p.FDs.Open - base.FDs.Open; got != wantOpen {
				t.Errorf("open minus control = %d, want %d", got, wantOpen)
			}
			if n, err := fsys.FDCount(c.pid()); err != nil || n != p.FDs.Open {
				t.Errorf("FDCount() = %d, %v; want %d", n, err, p.FDs.Open)
			}

			wantTCP := map[string]int{}
			if s.TCP > 0 {
				wantTCP["LISTEN"] = s.TCP
			}
			if s.Conns > 0 {
				wantTCP["ESTABLISHED"] = 2 * s.Conns
			}
			if !reflect.DeepEqual(p.Sockets.TCPByState, wantTCP) {
				t.Errorf("TCPByState = %v, want %v", p.Sockets.TCPByState, wantTCP)
			}
			if p.Sockets.UDP != s.UDP || p.Sockets.Unix != 2*s.Unix || p.Sockets.Other != s.Netlink {
				t.Errorf("UDP, Unix, Other = %d, %d, %d; want %d, %d, %d", p.Sockets.UDP, p.Sockets.Unix, p.Sockets.Other, s.UDP, 2*s.Unix, s.Netlink)
			}
			var listening, bound []int
			for _, sock := range p.Sockets.List {
				ap, err := netipAddrPort(sock.LocalAddress)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case sock.Protocol == "tcp" && sock.State == "LISTEN":
					listening = append(listening, ap)
				case sock.Protocol == "udp" && sock.State == "UNCONN":
					bound = append(bound, ap)
				}
			}
			if !sameInts(listening, c.report.TCPPorts) || !sameInts(bound, c.report.UDPPorts) {
				t.Errorf("listening on %v and bound to %v, want %v and %v", listening, bound, c.report.TCPPorts, c.report.UDPPorts)
			}

			exe, _ := os.Executable()
			if want := []string{exe, "procfs-child", "an arg with spaces"}; !reflect.DeepEqual(p.Cmdline, want) {
				t.Errorf("Cmdline = %q, want %q", p.Cmdline, want)
			}
			if p.Stat.PPID != os.Getpid() {
				t.Errorf("PPID = %d, want %d", p.Stat.PPID, os.Getpid())
			}
			if p.Status == nil || p.Status.UID != uint32(os.Getuid()) || p.Status.RSSBytes == 0 {
				t.Errorf("Status = %+v, want uid %d and some RSS", p.Status, os.Getuid())
			}
			if !hasEnv(p.Environ, "CHILD_API_TOKEN", "s3cret") || !hasEnv(p.Environ, childEnv, "hold") {
				t.Errorf("Environ lacks the child's variables: %v", p.Environ)
			}
			if p.Go == nil || p.Go.GoVersion == "" {
				t.Errorf("Go = %+v, want the test binary's build info", p.Go)
			}
		})
	}
}

// netipAddrPort returns the port of "127.0.0.1:port", failing for other hosts.
func netipAddrPort(hostport string) (int, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0, err
	}
	if host != "127.0.0.1" {
		return 0, fmt.Errorf("socket on %s, want 127.0.0.1", hostport)
	}
	return strconv.Atoi(port)
}

// sameInts reports whether a and b hold the same numbers in any order.
func sameInts(a, b []int) bool {
	a, b = append([]int(nil), a...), append([]int(nil), b...)
	sort.Ints(a)
	sort.Ints(b)
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// hasEnv reports whether vars has name=value.
func hasEnv(vars []EnvVar, name, value string) bool {
	for _, v := range vars {
		if v.Name == name && v.Value == value {
			return true
		}
	}
	return false
}

// TestLiveStartTime checks a child's start time against the wall clock.
// Boot time has a resolution of one second, hence the slack.
func TestLiveStartTime(t *testing.T) {
	before := time.Now()
	c := startHold(t, holdSpec{})
	after := time.Now()
	p, err := New("", "").Process(c.pid())
	if err != nil {
		t.Fatal(err)
	}
	if p.StartTime.Before(before.Add(-2*time.Second)) || p.StartTime.After(after.Add(2*time.Second)) {
		t.Errorf("StartTime = %v, want between %v and %v", p.StartTime, before, after)
	}
}

// TestLiveSelf reads the test process itself.
func TestLiveSelf(t *testing.T) {
	fsys := New("", "")
	self, err := fsys.Self()
	if err != nil || self != os.Getpid() {
		t.Fatalf("Self() = %d, %v; want %d", self, err, os.Getpid())
	}
	p, err := fsys.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.Go == nil {
		t.Fatalf("Go = nil, unavailable %v", p.Unavailable)
	}
	if p.Go.GoVersion == "" || !strings.HasSuffix(p.Go.Path, "internal/procfs.test") || p.Go.Main.Path != "github.com/triage-sh/triage" {
		t.Errorf("Go = %s %s %s", p.Go.GoVersion, p.Go.Path, p.Go.Main.Path)
	}
	exe, _ := os.Executable()
	if p.Executable != exe {
		t.Errorf("Executable = %q, want %q", p.Executable, exe)
	}
	if p.Limits[LimitOpenFiles].Soft == 0 && p.Limits[LimitOpenFiles].Hard != 0 {
		t.Errorf("open files limit = %+v", p.Limits[LimitOpenFiles])
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if got := p.Limits[LimitOpenFiles]; got.Soft != rl.Cur || got.Hard != rl.Max {
		t.Errorf("open files limit = %+v, want %d/%d", got, rl.Cur, rl.Max)
	}
	if _, err := os.Stat(fsys.v2Root() + "/cgroup.controllers"); err == nil {
		if p.Cgroup == nil {
			t.Fatalf("Cgroup = nil with cgroup v2 mounted, unavailable %v", p.Unavailable)
		}
		if p.Cgroup.CPUStat["usage_usec"] == 0 {
			t.Errorf("cpu.stat usage_usec = 0 in %s", p.Cgroup.Dir)
		}
	}
}

// TestLiveNotFound checks a pid that does not exist.
func TestLiveNotFound(t *testing.T) {
	// A child that has been reaped leaves a pid that is free (and, within
	// the test, not reused: pids are handed out cyclically).
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), quickExit)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	_, err := New("", "").Process(cmd.Process.Pid)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Process(%d) error = %v, want ErrNotFound", cmd.Process.Pid, err)
	}
}

// TestUnprivilegedReader runs the reader as nobody against this (root)
// process: what needs ptrace access must come back as unavailable with a
// reason that says what to do, and the rest must be read.
func TestUnprivilegedReader(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a reader as another user")
	}
	// The test binary's directory is private to root; copy it where
	// nobody can run it.
	dir, err := os.MkdirTemp("", "procfs-unpriv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	bin := filepath.Join(dir, "procfs.test")
	if err := copyFile(exe, bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), childEnv+"=read", "TRIAGE_PROCFS_PID="+strconv.Itoa(os.Getpid()), quickExit)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var p Process
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	var denied []string
	for _, u := range p.Unavailable {
		if strings.HasPrefix(u.Field, "cgroup.") {
			continue // depends on the host's cgroup layout
		}
		denied = append(denied, u.Field)
		if u.Field == "environment" || u.Field == "fds" || u.Field == "executable" {
			if !strings.Contains(u.Reason, "permission denied") || !strings.Contains(u.Reason, "run as the app's UID") {
				t.Errorf("reason for %s = %q, want permission denied and the fix", u.Field, u.Reason)
			}
		}
	}
	if want := []string{"environment", "executable", "go", "fds", "sockets"}; !reflect.DeepEqual(denied, want) {
		t.Errorf("unavailable = %v, want %v", p.Unavailable, want)
	}
	if p.Stat.PID != os.Getpid() || p.Status == nil || len(p.Cmdline) == 0 || p.Limits == nil {
		t.Errorf("the readable parts are missing: %+v", p)
	}
}

// copyFile copies src to dst, executable.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
