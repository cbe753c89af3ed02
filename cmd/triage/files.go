package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// atomicFile is written as PATH.tmp and renamed to PATH by Commit, so PATH
// only ever holds a complete artifact; Abort removes the temporary file.
type atomicFile struct {
	f    *os.File
	path string
	done bool
}

var _ io.Writer = (*atomicFile)(nil)

// createAtomic creates PATH.tmp, readable by its owner only (dumps and
// profiles can reveal labels and arguments).
func createAtomic(path string) (*atomicFile, error) {
	f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	return &atomicFile{f: f, path: path}, nil
}

func (a *atomicFile) Write(p []byte) (int, error) { return a.f.Write(p) }

// Commit closes the temporary file and renames it to the path.
func (a *atomicFile) Commit() error {
	a.done = true
	if err := a.f.Close(); err != nil {
		os.Remove(a.f.Name())
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	if err := os.Rename(a.f.Name(), a.path); err != nil {
		os.Remove(a.f.Name())
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	return nil
}

// Abort closes and removes the temporary file, unless Commit ran; it is
// safe to defer.
func (a *atomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.f.Close()
	os.Remove(a.f.Name())
}

// writeFileAtomic writes the output of write to path through an atomicFile.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := createAtomic(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := write(f); err != nil {
		return err
	}
	return f.Commit()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
