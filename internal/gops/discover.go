package gops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultProcRoot is the proc root FindAddr uses for "".
const DefaultProcRoot = "/proc"

// maxPortFile caps the port file read; gops writes a few decimal digits.
const maxPortFile = 64

// FindAddr returns the address of the gops agent in process pid, from the
// port file the agent writes when it starts. The file is <dir>/<pid>, where
// <dir> is, in the app's environment, $GOPS_CONFIG_DIR, else
// os.UserConfigDir()/gops: $XDG_CONFIG_HOME/gops or $HOME/.config/gops on
// Linux. It holds only the port; gops listens on 127.0.0.1 unless the app
// chose another address, so FindAddr returns "127.0.0.1:<port>".
//
// FindAddr reads the app's environment from procRoot/<pid>/environ (its
// environment at exec; a later os.Setenv is not seen) and the file through
// procRoot/<pid>/root, the app's own filesystem. From a sidecar that works
// only when the pod shares its PID namespace (shareProcessNamespace: true,
// so pid is the same number the app sees as its own) and the sidecar runs as
// the app's UID: the app's $HOME is in the app's container, not the
// sidecar's. Otherwise, or when the agent listens on another interface, give
// the address explicitly (--gops-addr, TRIAGE_GOPS_ADDR). procRoot ""
// means DefaultProcRoot.
func FindAddr(pid int, procRoot string) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("gops port file: invalid pid %d", pid)
	}
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	proc := filepath.Join(procRoot, strconv.Itoa(pid))
	environ, err := os.ReadFile(filepath.Join(proc, "environ"))
	if err != nil {
		return "", fmt.Errorf("gops port file of pid %d: reading its environment (needs a shared PID namespace and the app's UID; "+
			"else pass --gops-addr): %w", pid, err)
	}
	var tried []string
	for _, dir := range configDirs(parseEnviron(environ)) {
		file := filepath.Join(dir, strconv.Itoa(pid))
		tried = append(tried, file)
		b, err := readSmall(filepath.Join(proc, "root", file), maxPortFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("gops port file of pid %d: %w", pid, err)
		}
		port, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || port <= 0 || port > 65535 {
			return "", fmt.Errorf("gops port file %s of pid %d: %w: %q is not a port", file, pid, ErrBadReply, truncate(string(b)))
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
	}
	if len(tried) == 0 {
		return "", fmt.Errorf("gops port file of pid %d: none of GOPS_CONFIG_DIR, XDG_CONFIG_HOME, HOME is set in its environment; "+
			"pass --gops-addr: %w", pid, fs.ErrNotExist)
	}
	return "", fmt.Errorf("gops port file of pid %d: not found at %s: is a gops agent running in it? else pass --gops-addr: %w",
		pid, strings.Join(tried, " or "), fs.ErrNotExist)
}

// configDirs returns where gops's agent would write its port file, given the
// app's environment, in the order the agent tries them. When
// os.UserConfigDir fails (a relative $XDG_CONFIG_HOME), gops falls back to
// the user's home directory from the password database; $HOME stands in.
func configDirs(env map[string]string) []string {
	if d := env["GOPS_CONFIG_DIR"]; d != "" {
		return []string{d}
	}
	if x := env["XDG_CONFIG_HOME"]; x != "" && filepath.IsAbs(x) {
		return []string{filepath.Join(x, "gops")}
	}
	if h := env["HOME"]; h != "" {
		return []string{filepath.Join(h, ".config", "gops")}
	}
	return nil
}

// parseEnviron splits a NUL-separated environment; the first of a repeated
// name wins, as in getenv.
func parseEnviron(b []byte) map[string]string {
	env := make(map[string]string)
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if !ok {
			continue
		}
		if _, dup := env[string(k)]; !dup {
			env[string(k)] = string(v)
		}
	}
	return env
}

// readSmall reads at most limit bytes of a file.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
