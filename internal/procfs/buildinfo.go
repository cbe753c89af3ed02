package procfs

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
)

// GoBuild reads the Go build information of pid's executable through
// /proc/PID/exe, which works even when the file was deleted or lives in
// another mount namespace. It returns nil and no error for an executable
// that is not a Go binary.
func (p FS) GoBuild(pid int) (*debug.BuildInfo, error) {
	info, err := buildinfo.ReadFile(p.pidPath(pid, "exe"))
	if err == nil {
		return info, nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) || errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	// Not an executable format buildinfo knows, or not built by Go.
	return nil, nil
}
