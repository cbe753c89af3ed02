package config

import (
	"strings"
	"testing"
)

// FuzzParseFile: the configuration-file parser never panics, accepts only
// known keys, and reports every value it accepted with a line inside the file.
func FuzzParseFile(f *testing.F) {
	for _, s := range []string{"addr: 1\n", "a: [x, y]\n", "- a\n", "addr: {b: 1}\n", "", "addr: &x 1\nb: *x\n", "addr: |\n  multi\n  line\n"} {
		f.Add(s)
	}
	known := func(k string) bool { return k == "addr" || k == "a" || k == "b" }
	f.Fuzz(func(t *testing.T, data string) {
		vals, err := parseFile("f.yaml", []byte(data), known)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		lines := strings.Count(data, "\n") + 1
		for k, v := range vals {
			if !known(k) {
				t.Fatalf("accepted unknown key %q", k)
			}
			if v.line < 1 || v.line > lines {
				t.Fatalf("key %q at line %d of a %d-line file", k, v.line, lines)
			}
		}
	})
}
