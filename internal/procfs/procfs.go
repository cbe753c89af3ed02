// Package procfs reads the state of a process from the proc filesystem, the
// cgroup v2 filesystem and its executable. It knows nothing of gRPC.
//
// Every reader takes a pid and returns its own typed struct. Process gathers
// them all and follows a partial-failure model: it returns whatever it could
// read plus an Unavailable entry, with a reason that says what to do, for
// every part it could not. Only a pid that does not exist is an error
// (ErrNotFound).
//
// Reads are bounded: files are read up to a per-file cap and descriptor
// listings stop at MaxFDs.
package procfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Default roots.
const (
	DefaultProcRoot   = "/proc"
	DefaultCgroupRoot = "/sys/fs/cgroup"
)

// Read caps.
const (
	// MaxSmallFile caps files such as stat, status, limits and cgroup files.
	MaxSmallFile = 64 << 10
	// MaxArgFile caps cmdline and environ.
	MaxArgFile = 1 << 20
	// MaxFDs caps how many descriptors are listed (the kernel's default
	// fs.nr_open is 1,048,576).
	MaxFDs = 1 << 20
	// maxLine caps one line of a streamed file (/proc/stat's intr line is long
	// on hosts with many interrupts).
	maxLine = 1 << 20
)

// ErrNotFound is returned for a pid that does not exist in the proc root.
var ErrNotFound = errors.New("process not found")

// FS reads processes from a proc root and a cgroup v2 root.
// The zero value is not useful; use New.
type FS struct {
	procRoot   string
	cgroupRoot string
}

// New returns an FS on the given roots; empty strings mean DefaultProcRoot
// and DefaultCgroupRoot.
func New(procRoot, cgroupRoot string) FS {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	if cgroupRoot == "" {
		cgroupRoot = DefaultCgroupRoot
	}
	return FS{procRoot: procRoot, cgroupRoot: cgroupRoot}
}

// ProcRoot is the proc root the FS reads.
func (p FS) ProcRoot() string { return p.procRoot }

// CgroupRoot is the cgroup root the FS was given.
func (p FS) CgroupRoot() string { return p.cgroupRoot }

// path joins elements under the proc root.
func (p FS) path(elem ...string) string {
	return filepath.Join(append([]string{p.procRoot}, elem...)...)
}

// pidPath joins elements under /proc/PID.
func (p FS) pidPath(pid int, elem ...string) string {
	return p.path(append([]string{strconv.Itoa(pid)}, elem...)...)
}

// Exists reports whether pid exists. It returns an error wrapping
// ErrNotFound when it does not.
func (p FS) Exists(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("pid %d: %w", pid, ErrNotFound)
	}
	if _, err := os.Stat(p.pidPath(pid)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pid %d: %w", pid, ErrNotFound)
		}
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	return nil
}

// PIDs lists the numeric directories of the proc root, sorted.
func (p FS) PIDs() ([]int, error) {
	entries, err := os.ReadDir(p.procRoot)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p.procRoot, err)
	}
	var pids []int
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids, nil
}

// Self returns the pid <procRoot>/self points to: the reader's own pid as
// seen in that proc root.
func (p FS) Self() (int, error) {
	target, err := os.Readlink(p.path("self"))
	if err != nil {
		return 0, fmt.Errorf("read self: %w", err)
	}
	pid, err := strconv.Atoi(filepath.Base(target))
	if err != nil {
		return 0, fmt.Errorf("read self: %q is not a pid", target)
	}
	return pid, nil
}

// readFile reads at most limit bytes of name. truncated reports whether the
// file had more.
func readFile(name string, limit int64) (data []byte, truncated bool, err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, false, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if int64(len(data)) > limit {
		return data[:limit], true, nil
	}
	return data, false, nil
}

// readSmall reads a small file whole, failing when it exceeds MaxSmallFile.
func readSmall(name string) ([]byte, error) {
	data, truncated, err := readFile(name, MaxSmallFile)
	if err != nil {
		return nil, err
	}
	if truncated {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxSmallFile)
	}
	return data, nil
}

// scanLines calls fn for each line of r; lines longer than maxLine fail.
func scanLines(r io.Reader, fn func(line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		if err := fn(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Unavailable names a part of a process that could not be read and why.
type Unavailable struct {
	// Field is the part, e.g. "fds" or "cgroup.memory.max".
	Field string
	// Reason says why and what to do.
	Reason string
}

// reason turns a read error into a sentence that says what to do.
func reason(err error) string {
	var pe *fs.PathError
	path := ""
	if errors.As(err, &pe) {
		path = pe.Path
	}
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("permission denied reading %s: the sidecar must run as the app's UID (or hold CAP_SYS_PTRACE) to read it", path)
	case errors.Is(err, syscall.ESRCH), errors.Is(err, ErrNotFound):
		return "the process exited while it was being read: ask again"
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s does not exist: the process may have exited, or this kernel does not provide it", path)
	}
	return err.Error()
}

// isGone reports whether err says the process vanished.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// maxStream caps files read line by line, such as /proc/stat and
// /proc/PID/net/tcp.
const maxStream = 256 << 20

// boundedFile is a file read through a limit.
type boundedFile struct {
	io.Reader
	f *os.File
}

// Close closes the file.
func (b boundedFile) Close() error { return b.f.Close() }

// openBounded opens name for streaming, reading at most maxStream bytes.
func openBounded(name string) (io.ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return boundedFile{Reader: io.LimitReader(f, maxStream), f: f}, nil
}
