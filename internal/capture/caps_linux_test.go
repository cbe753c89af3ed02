package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const permittedChildEnv = "TRIAGE_CAPTURE_PERMITTED_CHILD"

// TestHelperPermittedOnly runs in a child as an unprivileged user whose
// binary carries cap_net_raw+p: it reports whether capture opens.
func TestHelperPermittedOnly(t *testing.T) {
	if os.Getenv(permittedChildEnv) != "1" {
		t.Skip("helper process for TestPermittedOnly")
	}
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Cap") || strings.HasPrefix(l, "Uid:") {
			fmt.Println("child", l)
		}
	}
	h, err := Open(Options{Interface: "lo"})
	switch {
	case err == nil:
		h.Close()
		fmt.Println("capture: open")
	case errors.Is(err, ErrPermission):
		fmt.Println("capture: permission:", err)
	default:
		fmt.Println("capture: error:", err)
	}
	// The capability was lowered again: effective has no CAP_NET_RAW.
	status, _ = os.ReadFile("/proc/thread-self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "CapEff:") {
			fmt.Println("after", l)
		}
	}
}

// TestPermittedOnly proves the capture profile of the injection issue: a
// non-root process whose binary carries only the permitted bit
// (setcap cap_net_raw+p) opens a capture, raising the capability for the
// socket alone; the same binary where the capability is dropped from the
// bounding set (the restricted profile) still starts, and capture is off.
func TestPermittedOnly(t *testing.T) {
	needRoot(t)
	setcap, err1 := exec.LookPath("setcap")
	setpriv, err2 := exec.LookPath("setpriv")
	if err1 != nil || err2 != nil {
		t.Skip("setcap (libcap2-bin) and setpriv (util-linux) are needed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "triage-caps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "capture.test")
	copyFile(t, self, bin)
	if out, err := exec.Command(setcap, "cap_net_raw+p", bin).CombinedOutput(); err != nil {
		t.Skipf("setcap on %s: %v %s (the file system needs security xattrs)", bin, err, out)
	}
	child := func(extra ...string) string {
		args := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}, extra...)
		args = append(args, "--", bin, "-test.run=^TestHelperPermittedOnly$", "-test.v")
		cmd := exec.Command(setpriv, args...)
		cmd.Env = append(os.Environ(), permittedChildEnv+"=1")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := child()
	if !strings.Contains(out, "capture: open") || !strings.Contains(out, "after CapEff:\t0000000000000000") {
		t.Errorf("with cap_net_raw+p, capture does not open or the capability stays raised:\n%s", out)
	}
	out = child("--bounding-set=-net_raw")
	if !strings.Contains(out, "capture: permission") {
		t.Errorf("without CAP_NET_RAW in the bounding set the binary should start and capture be off:\n%s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
