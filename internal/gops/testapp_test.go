package gops_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/google/gops/agent"

	"github.com/triage-sh/triage/internal/gops"
)

// The test app is this test binary re-executed with testAppEnv=1: it starts
// the real gops agent, parks parkedGoroutines goroutines in
// parkedInTestApp, prints "ready" and runs until its stdin closes.
const (
	testAppEnv       = "TRIAGE_GOPS_TESTAPP"
	parkedGoroutines = 50
	// parkedFrame starts a stack frame line of parkedInTestApp in a dump.
	parkedFrame = "github.com/triage-sh/triage/internal/gops_test.parkedInTestApp("
)

//go:noinline
func parkedInTestApp(ch <-chan struct{}) { <-ch }

func runTestApp() {
	// The agent finds its config dir in GOPS_CONFIG_DIR, set by the test.
	if err := agent.Listen(agent.Options{Addr: "127.0.0.1:0", ShutdownCleanup: true}); err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(2)
	}
	ch := make(chan struct{})
	for range parkedGoroutines {
		go parkedInTestApp(ch)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	agent.Close()
	os.Exit(0)
}

// startTestApp starts the test app and returns its pid and the agent's
// address, found through the port file the agent wrote.
func startTestApp(t *testing.T) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), testAppEnv+"=1", "GOPS_CONFIG_DIR="+t.TempDir())
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
	var once sync.Once
	stopApp := func() {
		once.Do(func() {
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("test app: %v", err)
			}
		})
	}
	t.Cleanup(stopApp)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		stopApp()
		t.Fatalf("test app did not start: %q, %v", line, err)
	}
	addr, err := gops.FindAddr(cmd.Process.Pid, "")
	if err != nil {
		t.Fatalf("FindAddr of the test app: %v", err)
	}
	return cmd.Process.Pid, addr
}
