//go:build linux

package main

import (
	"slices"
	"strings"
	"testing"
)

// FuzzGoroutinePods checks that any CLI output yields an error or distinct,
// non-empty pod names, without panicking.
func FuzzGoroutinePods(f *testing.F) {
	for _, s := range []string{
		`{"pods":2,"totals":[{"pod":"shop/shop-0","total":20},{"pod":"shop/shop-1"}]}`,
		`{"report":{"totals":[{"pod":"a"}]}}`,
		`{"totals":{"pod":"a"}}`,
		`{"a":1,"b":{"c":[]}}`,
		`[]`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pods, err := goroutinePods(b)
		if err != nil {
			if pods != nil {
				t.Fatalf("pods %q with error %v", pods, err)
			}
			return
		}
		for i, p := range pods {
			if p == "" || slices.Contains(pods[:i], p) {
				t.Fatalf("pods %q: empty or repeated", pods)
			}
		}
	})
}

// FuzzParseCPUInfo checks that the CPU count never exceeds the lines and a
// model is always named.
func FuzzParseCPUInfo(f *testing.F) {
	f.Add("processor\t: 0\nmodel name\t: AMD EPYC\n")
	f.Add("processor: 0\nprocessor: 1\n")
	f.Add("model name:\n")
	f.Fuzz(func(t *testing.T, s string) {
		model, cpus := parseCPUInfo(s)
		if model == "" {
			t.Fatal("empty model")
		}
		if cpus < 0 || cpus > strings.Count(s, "\n")+1 {
			t.Fatalf("%d CPUs from %d lines", cpus, strings.Count(s, "\n")+1)
		}
	})
}
