package procfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kinds of file descriptor.
const (
	KindFile      = "file"
	KindDir       = "dir"
	KindSocket    = "socket"
	KindPipe      = "pipe"
	KindAnonInode = "anon_inode"
	KindChar      = "char"
	KindBlock     = "block"
	KindOther     = "other"
)

// FDs summarises the open file descriptors of a process.
type FDs struct {
	// Open is the number of descriptors listed.
	Open int
	// ByKind counts descriptors by kind (KindFile, KindSocket, ...).
	ByKind map[string]int
	// SocketInodes are the inodes of the socket descriptors, sorted.
	SocketInodes []uint64
	// Truncated is true when the process had more than MaxFDs descriptors
	// and the rest were not listed.
	Truncated bool
}

// ClassifyLink classifies an fd by its /proc/PID/fd link target alone. For a
// path it returns KindFile and needStat, since only stat can tell a
// directory or device from a file. For a socket it also returns the inode.
func ClassifyLink(target string) (kind string, inode uint64, needStat bool) {
	switch {
	case strings.HasPrefix(target, "socket:["):
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]"), 10, 64)
		if err != nil {
			return KindOther, 0, false
		}
		return KindSocket, n, false
	case strings.HasPrefix(target, "pipe:["):
		return KindPipe, 0, false
	case strings.HasPrefix(target, "anon_inode:"):
		return KindAnonInode, 0, false
	case strings.HasPrefix(target, "/"):
		return KindFile, 0, true
	}
	return KindOther, 0, false // net:[...], mnt:[...], and other nsfs links
}

// kindOfMode classifies by file mode.
func kindOfMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return KindDir
	case m.IsRegular():
		return KindFile
	case m&fs.ModeNamedPipe != 0:
		return KindPipe
	case m&fs.ModeSocket != 0:
		return KindSocket
	case m&fs.ModeCharDevice != 0:
		return KindChar
	case m&fs.ModeDevice != 0:
		return KindBlock
	}
	return KindOther
}

// FDs lists /proc/PID/fd and classifies each descriptor. Descriptors closed
// while being listed are skipped.
func (p FS) FDs(pid int) (FDs, error) {
	dir := p.pidPath(pid, "fd")
	out := FDs{ByKind: map[string]int{}}
	err := eachFD(dir, func(name string) error {
		target, err := os.Readlink(filepath.Join(dir, name))
		if err != nil {
			if isGone(err) {
				return nil // closed since the listing
			}
			return err
		}
		kind, inode, needStat := ClassifyLink(target)
		if needStat {
			// Stat follows the magic link to the open file itself, even
			// when it was deleted or is in another mount namespace.
			if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
				kind = kindOfMode(fi.Mode())
			}
		}
		if kind == KindSocket && inode != 0 {
			out.SocketInodes = append(out.SocketInodes, inode)
		}
		out.ByKind[kind]++
		out.Open++
		return nil
	}, &out.Truncated)
	if err != nil {
		return FDs{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	sort.Slice(out.SocketInodes, func(i, j int) bool { return out.SocketInodes[i] < out.SocketInodes[j] })
	return out, nil
}

// FDCount counts the entries of /proc/PID/fd (at most MaxFDs) without
// reading the links.
func (p FS) FDCount(pid int) (int, error) {
	n := 0
	var truncated bool
	err := eachFD(p.pidPath(pid, "fd"), func(string) error { n++; return nil }, &truncated)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return n, nil
}

// eachFD calls fn for the name of each entry of dir, in batches, stopping
// after MaxFDs entries and then setting *truncated.
func eachFD(dir string, fn func(name string) error, truncated *bool) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	seen := 0
	for {
		names, err := f.Readdirnames(1024)
		for _, name := range names {
			if seen == MaxFDs {
				*truncated = true
				return nil
			}
			seen++
			if err := fn(name); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
