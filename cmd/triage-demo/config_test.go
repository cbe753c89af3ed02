package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	def := DefaultConfig()
	tests := []struct {
		name    string
		path    string
		want    Config
		wantErr string
	}{
		{"no file", "", def, ""},
		{"yaml", "testdata/demo.yaml", Config{Greeting: "hello from the test config", Workers: 2, Tick: 50 * time.Millisecond, OpenFiles: 3,
			DBURL: "postgres://demo@db:5432/demo", DBPassword: "hunter2"}, ""},
		{"json", "testdata/demo.json", Config{Greeting: "hello from JSON", Workers: 1, Tick: time.Second, OpenFiles: def.OpenFiles, DBPassword: "hunter2"}, ""},
		{"empty file keeps defaults", file("empty.yaml", ""), def, ""},
		{"missing file", filepath.Join(dir, "nope.yaml"), def, "no such file"},
		{"unknown key", file("typo.yaml", "wokers: 3\n"), def, "field wokers not found"},
		{"bad duration", file("tick.yaml", "tick: soon\n"), def, "tick"},
		{"too many workers", file("workers.yaml", "workers: 1000\n"), def, "workers is 1000"},
		{"negative open files", file("files.yaml", "open_files: -1\n"), def, "open_files is -1"},
		{"tick too short", file("short.yaml", "tick: 1ms\n"), def, "tick is 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfig(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--config") {
					t.Fatalf("error = %v, want one naming --config and containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}
