package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// listenUnix listens on the Unix socket path with mode 0660, creating its
// directory (0750) when missing. A stale socket, one nobody accepts on, is
// removed first; a live one is an error. Nothing here touches TCP.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("agent: create the socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", path, err)
	}
	// The socket exists with the umask's mode until this chmod; its directory
	// (0750 when the agent created it) covers that instant.
	if err := os.Chmod(path, 0o660); err != nil {
		_ = lis.Close()
		return nil, fmt.Errorf("agent: chmod 0660 %s: %w", path, err)
	}
	return lis, nil
}

// removeStale removes path when it is a socket nobody serves, and refuses
// when somebody does or when it is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: inspect %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("agent: %s exists and is not a socket (%s): remove it or choose another path", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("agent: another process serves %s: stop it or choose another TRIAGE_AGENT_SOCKET", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("agent: probe %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agent: remove the stale socket %s: %w", path, err)
	}
	return nil
}
