package gops

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc builds a proc root with process pid whose environment is env and
// whose filesystem (procRoot/pid/root) holds files.
func fakeProc(t *testing.T, pid string, env []string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	write := func(path, data string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, pid, "environ"), strings.Join(env, "\x00")+"\x00")
	for name, data := range files {
		write(filepath.Join(root, pid, "root", name), data)
	}
	return root
}

func TestFindAddr(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     []string
		files   map[string]string
		want    string
		wantErr error
	}{
		{"home", []string{"PATH=/bin", "HOME=/home/app"},
			map[string]string{"/home/app/.config/gops/42": "36789"}, "127.0.0.1:36789", nil},
		{"xdg", []string{"HOME=/home/app", "XDG_CONFIG_HOME=/cfg"},
			map[string]string{"/cfg/gops/42": "1234\n", "/home/app/.config/gops/42": "9"}, "127.0.0.1:1234", nil},
		{"relative xdg falls back to home", []string{"HOME=/home/app", "XDG_CONFIG_HOME=cfg"},
			map[string]string{"/home/app/.config/gops/42": "2345"}, "127.0.0.1:2345", nil},
		{"gops config dir wins", []string{"HOME=/home/app", "GOPS_CONFIG_DIR=/run/gops", "GOPS_CONFIG_DIR=/ignored"},
			map[string]string{"/run/gops/42": "3456", "/home/app/.config/gops/42": "9"}, "127.0.0.1:3456", nil},
		{"another pid's file", []string{"HOME=/home/app"},
			map[string]string{"/home/app/.config/gops/43": "3456"}, "", fs.ErrNotExist},
		{"no dirs", []string{"PATH=/bin"}, nil, "", fs.ErrNotExist},
		{"not a port", []string{"HOME=/h"}, map[string]string{"/h/.config/gops/42": "70000"}, "", ErrBadReply},
		{"empty", []string{"HOME=/h"}, map[string]string{"/h/.config/gops/42": ""}, "", ErrBadReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeProc(t, "42", tc.env, tc.files)
			got, err := FindAddr(42, root)
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr != nil) != (err != nil) {
				t.Fatalf("FindAddr = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "--gops-addr") && !errors.Is(err, ErrBadReply) {
				t.Errorf("error %q does not say to pass --gops-addr", err)
			}
		})
	}
	if _, err := FindAddr(7, t.TempDir()); err == nil || !strings.Contains(err.Error(), "--gops-addr") {
		t.Errorf("FindAddr of a missing process: %v", err)
	}
	if _, err := FindAddr(0, ""); err == nil {
		t.Error("FindAddr(0) succeeded")
	}
}
