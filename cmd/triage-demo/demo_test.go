package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testTimeout bounds each test.
const testTimeout = 60 * time.Second

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// TestStartShutdown runs the demo in-process: it serves, keeps its files
// and idle connection open, and Shutdown releases everything (goleak in
// TestMain checks its goroutines are gone).
func TestStartShutdown(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Greeting = "in-process"
	d, err := Start("127.0.0.1:0", cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+d.Addr().String()+"/"); code != 200 || body != "in-process\n" {
		t.Errorf("GET / = %d %q", code, body)
	}
	if len(d.files) != cfg.OpenFiles {
		t.Fatalf("%d files open, want %d", len(d.files), cfg.OpenFiles)
	}
	for _, f := range d.files {
		if _, err := f.Stat(); err != nil {
			t.Errorf("temporary file not open: %v", err)
		}
	}
	if got, want := d.idle.out.RemoteAddr().String(), d.idle.listener.Addr().String(); got != want {
		t.Errorf("idle connection goes to %s, want our peer listener %s", got, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, f := range d.files {
		if _, err := os.Stat(f.Name()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temporary file %s not removed: %v", f.Name(), err)
		}
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestStartFailsOnBusyAddress(t *testing.T) {
	d, err := Start("127.0.0.1:0", DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	_, err = Start(d.Addr().String(), DefaultConfig(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("error = %v, want a listen error naming --addr", err)
	}
}

// buildDemo builds the binary into a temporary directory.
func buildDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "triage-demo")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var readyLine = regexp.MustCompile(`^triage-demo listening on (127\.0\.0\.1:\d+) pid=(\d+)$`)

// TestBinary builds the demo, runs it, waits for the ready line, calls it
// and stops it with SIGTERM: it must exit 0.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildDemo(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--addr", "127.0.0.1:0", "--config", "testdata/demo.yaml")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no ready line; stderr:\n%s", stderr.String())
	}
	m := readyLine.FindStringSubmatch(lines.Text())
	if m == nil || m[2] != strconv.Itoa(cmd.Process.Pid) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("ready line %q, want %s with pid %d", lines.Text(), readyLine, cmd.Process.Pid)
	}
	base := "http://" + m[1]
	if code, body := get(t, base+"/"); code != 200 || body != "hello from the test config\n" {
		t.Errorf("GET / = %d %q, want the greeting from the config", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0; stderr:\n%s", err, stderr.String())
	}
	if len(rest) != 0 {
		t.Errorf("more on stdout after the ready line: %q", rest)
	}
	if strings.Contains(stderr.String(), "hunter2") {
		t.Error("the db_password from the config was logged")
	}
}

func TestBinaryUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildDemo(t)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"unknown flag", []string{"--bogus"}, 2},
		{"extra argument", []string{"extra"}, 2},
		{"bad config", []string{"--config", "/nonexistent.yaml"}, 1},
		{"help", []string{"--help"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err := exec.CommandContext(ctx, bin, tt.args...).Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit code = %d, want %d", code, tt.code)
			}
		})
	}
}
