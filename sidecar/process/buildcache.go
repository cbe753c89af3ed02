package process

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"

	"github.com/triage-sh/triage/internal/procfs"
)

// maxBuilds bounds the build-information cache.
const maxBuilds = 256

// buildCache remembers the Go build information of executables by their
// identity (device, inode, size, modification time), so a process list or
// explain does not re-read a binary's build information every time.
type buildCache struct {
	mu sync.Mutex
	m  map[buildKey]*debug.BuildInfo
}

type buildKey struct {
	dev, ino   uint64
	size, mtim int64
}

// reader returns a GoBuild function for procfs.ReadOptions.
func (c *buildCache) reader(fs procfs.FS) func(pid int) (*debug.BuildInfo, error) {
	return func(pid int) (*debug.BuildInfo, error) {
		var key buildKey
		if st, err := os.Stat(filepath.Join(fs.ProcRoot(), strconv.Itoa(pid), "exe")); err == nil {
			if s, ok := st.Sys().(*syscall.Stat_t); ok {
				key = buildKey{dev: uint64(s.Dev), ino: s.Ino, size: s.Size, mtim: s.Mtim.Nano()}
			}
		}
		if key != (buildKey{}) {
			c.mu.Lock()
			info, hit := c.m[key]
			c.mu.Unlock()
			if hit {
				return info, nil
			}
		}
		info, err := fs.GoBuild(pid)
		if err != nil || key == (buildKey{}) {
			return info, err
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxBuilds {
			c.m = map[buildKey]*debug.BuildInfo{}
		}
		c.m[key] = info
		c.mu.Unlock()
		return info, nil
	}
}
