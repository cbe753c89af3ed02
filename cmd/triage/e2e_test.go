package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/triage-sh/triage/internal/auth"
)

// TestEndToEnd runs the commands against a real sidecar in this process.
func TestEndToEnd(t *testing.T) {
	addr, dev := startSidecar(t)
	self := os.Getpid()
	base := []string{"--dev", dev, "--addr", addr}
	cli := func(args ...string) result { return triage(t, nil, false, append(base, args...)...) }
	ok := func(t *testing.T, r result) {
		t.Helper()
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	}

	t.Run("explain json", func(t *testing.T) {
		r := cli("explain", "-o", "json")
		ok(t, r)
		var got struct {
			Build struct {
				GoVersion string `json:"go_version"`
			} `json:"build"`
			Auth struct {
				Caller struct {
					Name   string   `json:"name"`
					Method string   `json:"method"`
					Roles  []string `json:"roles"`
				} `json:"caller"`
				PolicyFile string `json:"policy_file"`
			} `json:"auth"`
			Capabilities []struct {
				Name    string `json:"name"`
				Enabled bool   `json:"enabled"`
			} `json:"capabilities"`
			Processes []struct {
				Pid  int  `json:"pid"`
				Self bool `json:"self"`
			} `json:"processes"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		if got.Auth.Caller.Name != auth.DevClientIdentity || got.Auth.Caller.Method != "mtls" || got.Build.GoVersion == "" || got.Auth.PolicyFile == "" {
			t.Errorf("explain JSON lacks the caller, build or policy (proto field names?): %+v", got)
		}
		if len(got.Capabilities) == 0 || len(got.Processes) == 0 {
			t.Errorf("explain JSON lacks capabilities or processes: %+v", got)
		}
		if strings.Contains(r.stdout, "goVersion") || strings.Contains(r.stdout, "\x1b[") {
			t.Error("JSON uses lowerCamel names or colour")
		}
	})

	t.Run("explain text", func(t *testing.T) {
		r := cli("explain")
		ok(t, r)
		for _, want := range []string{"FINDINGS (", "SIDECAR", "CALLER", auth.DevClientIdentity + " (mtls)", "CAPABILITIES", "CERTIFICATES", "SETTINGS", "PROCESSES ("} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("explain lacks %q:\n%s", want, r.stdout)
			}
		}
		if !strings.HasPrefix(r.stdout, "FINDINGS (") {
			t.Errorf("explain does not start with the findings:\n%.200s", r.stdout)
		}
	})

	t.Run("proc list", func(t *testing.T) {
		r := cli("proc")
		ok(t, r)
		if !strings.HasPrefix(strings.TrimSpace(r.stdout), "PID") {
			t.Errorf("proc does not start with the table header:\n%.200s", r.stdout)
		}
		line := regexp.MustCompile(fmt.Sprintf(`(?m)^\s*%d\s+\d+\s+\S+ \(sidecar\)`, self))
		if !line.MatchString(r.stdout) {
			t.Errorf("proc lacks this process (pid %d) marked as the sidecar:\n%s", self, r.stdout)
		}
	})

	t.Run("proc pid", func(t *testing.T) {
		r := cli("proc", "--pid", fmt.Sprint(self))
		ok(t, r)
		for _, want := range []string{fmt.Sprintf("PROCESS %d ", self), "(the sidecar itself)", "FILE DESCRIPTORS", "SOCKETS", "CGROUP", "GO BUILD", "ENVIRONMENT", "threads"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("proc --pid lacks %q:\n%s", want, r.stdout)
			}
		}
	})

	t.Run("proc pid json with sockets", func(t *testing.T) {
		r := cli("proc", "--pid", fmt.Sprint(self), "--sockets", "-o", "json")
		ok(t, r)
		var got struct {
			Process struct {
				Pid     int `json:"pid"`
				Sockets struct {
					Sockets []struct {
						LocalAddress string `json:"local_address"`
						State        string `json:"state"`
					} `json:"sockets"`
				} `json:"sockets"`
			} `json:"process"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not JSON: %v", err)
		}
		if got.Process.Pid != self {
			t.Errorf("pid = %d, want %d", got.Process.Pid, self)
		}
		listening := false
		for _, s := range got.Process.Sockets.Sockets {
			listening = listening || (s.LocalAddress == addr && s.State == "LISTEN")
		}
		if !listening {
			t.Errorf("the sidecar's own listener %s is not among the sockets: %+v", addr, got.Process.Sockets.Sockets)
		}
	})

	t.Run("proc pid not found", func(t *testing.T) {
		r := cli("proc", "--pid", "999999999")
		if r.code != exitError {
			t.Errorf("exit code = %d, want %d", r.code, exitError)
		}
		oneErrorLine(t, r, "triage: get process 999999999: NotFound: pid 999999999 not found")
		if r.stdout != "" {
			t.Errorf("stdout = %q, want nothing", r.stdout)
		}
	})

	t.Run("version", func(t *testing.T) {
		r := cli("version")
		ok(t, r)
		if !regexp.MustCompile(`(?m)^client  \S+ \(`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^server  \S+ \(`).MatchString(r.stdout) {
			t.Errorf("version output:\n%s", r.stdout)
		}
	})

	t.Run("version json", func(t *testing.T) {
		r := cli("version", "-o", "json")
		ok(t, r)
		var got map[string]struct {
			Version  string `json:"version"`
			Platform string `json:"platform"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not JSON: %v", err)
		}
		if got["client"].Version == "" || got["server"].Platform == "" {
			t.Errorf("version JSON = %+v", got)
		}
	})

	t.Run("environment variables", func(t *testing.T) {
		r := triage(t, map[string]string{"TRIAGE_ADDR": addr, "TRIAGE_DEV": dev}, false, "version")
		ok(t, r)
		if !strings.Contains(r.stdout, "server  ") {
			t.Errorf("version with TRIAGE_ADDR/TRIAGE_DEV:\n%s", r.stdout)
		}
	})
}

// TestColor checks colour is used only on a terminal without NO_COLOR, and
// never in JSON.
func TestColor(t *testing.T) {
	addr, dev := startSidecar(t)
	tests := []struct {
		name     string
		vars     map[string]string
		terminal bool
		args     []string
		want     bool
	}{
		{"terminal", nil, true, nil, true},
		{"pipe", nil, false, nil, false},
		{"NO_COLOR", map[string]string{"NO_COLOR": "1"}, true, nil, false},
		{"dumb terminal", map[string]string{"TERM": "dumb"}, true, nil, false},
		{"json on a terminal", nil, true, []string{"-o", "json"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := triage(t, tt.vars, tt.terminal, append([]string{"--dev", dev, "--addr", addr, "explain"}, tt.args...)...)
			if r.code != exitOK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := strings.Contains(r.stdout, "\x1b["); got != tt.want {
				t.Errorf("coloured = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestConnectionErrors checks that each way of failing to reach the
// sidecar exits 1 with one line naming the code and what to do.
func TestConnectionErrors(t *testing.T) {
	addr, _ := startSidecar(t)
	otherDev := t.TempDir() // a different development CA
	closed := closedAddr(t)
	tests := []struct {
		name     string
		args     []string
		prefix   string
		contains string
		stdout   string
	}{
		{"plaintext against TLS", []string{"--addr", addr, "--insecure", "explain"}, "triage: explain: Unavailable: ", "drop --insecure", ""},
		{"wrong CA", []string{"--addr", addr, "--dev", otherDev, "proc"}, "triage: list processes: Unavailable: ", "check --ca / --dev", ""},
		{"nothing listening", []string{"--addr", closed, "--dev", otherDev, "proc", "--pid", "1"}, "triage: get process 1: Unavailable: ", "is the sidecar running at " + closed, ""},
		{"version still prints the client", []string{"--addr", closed, "--insecure", "version"}, "triage: get version: Unavailable: ", "port-forward", "client  "},
		{"missing CA file", []string{"--addr", addr, "--ca", "/nonexistent/ca.pem", "version"}, "triage: connect: ", "/nonexistent/ca.pem", "client  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := triage(t, nil, false, tt.args...)
			if r.code != exitError {
				t.Errorf("exit code = %d, want %d", r.code, exitError)
			}
			oneErrorLine(t, r, tt.prefix)
			if !strings.Contains(r.stderr, tt.contains) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tt.contains)
			}
			if !strings.HasPrefix(r.stdout, tt.stdout) || (tt.stdout == "" && r.stdout != "") {
				t.Errorf("stdout = %q, want it to start with %q", r.stdout, tt.stdout)
			}
		})
	}
}
