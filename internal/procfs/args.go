package procfs

import (
	"fmt"
	"os"
	"strings"
)

// Args is a NUL-separated list such as /proc/PID/cmdline or environ.
type Args struct {
	// Values are the entries in order.
	Values []string
	// Truncated is true when the file exceeded MaxArgFile and the rest was
	// not read.
	Truncated bool
}

// ParseNULList splits a NUL-separated list. A trailing NUL does not start an
// empty entry.
func ParseNULList(data string) []string {
	data = strings.TrimSuffix(data, "\x00")
	if data == "" {
		return nil
	}
	return strings.Split(data, "\x00")
}

// readArgs reads a NUL-separated file of pid up to MaxArgFile.
func (p FS) readArgs(pid int, name string) (Args, error) {
	data, truncated, err := readFile(p.pidPath(pid, name), MaxArgFile)
	if err != nil {
		return Args{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return Args{Values: ParseNULList(string(data)), Truncated: truncated}, nil
}

// Cmdline reads /proc/PID/cmdline. It is empty for kernel threads and zombies.
func (p FS) Cmdline(pid int) (Args, error) { return p.readArgs(pid, "cmdline") }

// EnvVar is one environment entry as the process was started with it.
type EnvVar struct {
	Name, Value string
}

// Environ is the initial environment of a process.
type Environ struct {
	// Vars are in the order of the file.
	Vars []EnvVar
	// Truncated is true when environ exceeded MaxArgFile.
	Truncated bool
}

// ParseEnviron parses NUL-separated NAME=VALUE entries; an entry without '='
// is a name with an empty value.
func ParseEnviron(data string) []EnvVar {
	var vars []EnvVar
	for _, kv := range ParseNULList(data) {
		name, value, _ := strings.Cut(kv, "=")
		vars = append(vars, EnvVar{Name: name, Value: value})
	}
	return vars
}

// Environ reads /proc/PID/environ: the environment the process started
// with (later setenv calls do not show). Values are not redacted here.
func (p FS) Environ(pid int) (Environ, error) {
	data, truncated, err := readFile(p.pidPath(pid, "environ"), MaxArgFile)
	if err != nil {
		return Environ{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return Environ{Vars: ParseEnviron(string(data)), Truncated: truncated}, nil
}

// Executable reads the /proc/PID/exe link.
func (p FS) Executable(pid int) (string, error) {
	target, err := os.Readlink(p.pidPath(pid, "exe"))
	if err != nil {
		return "", fmt.Errorf("pid %d: %w", pid, err)
	}
	return target, nil
}
