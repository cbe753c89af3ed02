package goroutines

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var fuzzSeeds = []string{
	"",
	"goroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\n",
	"goroutine 2 [chan receive, 5 minutes, locked to thread]:\nmain.f(...)\n\t/a.go:2\ncreated by main.main in goroutine 1\n\t/a.go:3 +0x2\n\ngoroutine 3 [select]:\n",
	"goroutine 84 gp=0x1 m=3 mp=0x2 [flushing proc caches (scan), 2 minutes, synctest bubble 1 labels:{\"a\": \"b\"}]:\nruntime.goexit({})\n\tC:/Go Files/x.s:1 +0x4 fp=0x1 sp=0x2 pc=0x3\n",
	"goroutine profile: total 3\n2 @ 0x1 0x2\n# labels: {\"k\":\"v\"}\n#\t0x1\tmain.f+0x1\t/a.go:1\n\n1 @ 0x3\n#\t0x3\tmain.g+0x2\t/b.go:2\n",
	"panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\nexit status 2\n",
	"fatal error: x\n[signal SIGSEGV: segmentation violation]\n\nruntime stack:\nruntime.throw({0x1, 0x2})\n\truntime/panic.go:1 +0x1\n\ngoroutine 1 [running]:\n\tgoroutine running on other thread; stack unavailable\n",
	"goroutine 25 [chan receive]:\nmain.bar()\n\t/a.go:57 +0x1\ncreated by main.d1\n\t/a.go:69 +0x34\n[originating from goroutine 24]:\nmain.d1(...)\n\t/a.go:70 +0x34\n...additional frames elided...\ncreated by main.d1\n\t/a.go:69 +0x34\n",
	"==================\nWARNING: DATA RACE\nRead by goroutine 5:\n  main.f()\n      /a.go:1 +0x1\n==================\n",
	"SIGQUIT: quit\nPC=0x1 m=0 sigcode=0\n\ngoroutine 0 gp=0x1 m=0 mp=0x2 [idle]:\nruntime.futex(0x1)\n\truntime/sys.s:1 +0x1\n",
	"goroutine 1 [running]:\r\nmain.main()\r\n\t/a.go:1 +0x1\r\ncreated by main.x\r\n",
	"...6 frames elided...\n",
}

// FuzzParse checks that Parse never panics, that its counts add up through
// grouping and diffing, and that cutting a dump at a goroutine boundary
// (a blank line) keeps every goroutine read before the cut unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	if dir, ok := findFixturesDir(); ok {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && !e.IsDir() {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrNoDump) || d != nil {
				t.Fatalf("Parse = %v, %v; want nil and ErrNoDump", d, err)
			}
			return
		}
		sum := 0
		for _, g := range d.Goroutines {
			if g == nil || g.Count <= 0 {
				t.Fatalf("goroutine with count %v", g)
			}
			sum += g.Count
		}
		if sum != d.Total {
			t.Fatalf("Total %d, sum of counts %d", d.Total, sum)
		}
		for _, stackOnly := range []bool{false, true} {
			groups := d.Group(GroupOptions{StackOnly: stackOnly})
			gsum := 0
			for _, g := range groups {
				if g.Count <= 0 || g.Key() == "" {
					t.Fatalf("group count %d key %q", g.Count, g.Key())
				}
				gsum += g.Count
			}
			if gsum != d.Total {
				t.Fatalf("groups sum to %d, Total %d (StackOnly %v)", gsum, d.Total, stackOnly)
			}
			for _, dl := range Diff(nil, groups) {
				if dl.Before != 0 || dl.Change != dl.After || dl.After <= 0 {
					t.Fatalf("diff from nothing: %+v", dl)
				}
			}
			for _, dl := range Diff(groups, groups) {
				if dl.Change != 0 {
					t.Fatalf("self diff changed: %+v", dl)
				}
			}
		}
		// Prefix property at the last goroutine boundary.
		cut := bytes.LastIndex(data, []byte("\n\n"))
		if cut < 0 {
			return
		}
		pd, err := Parse(bytes.NewReader(data[:cut+2]))
		if err != nil {
			return // nothing recognisable before the cut
		}
		if len(pd.Goroutines) > len(d.Goroutines) {
			t.Fatalf("prefix has %d goroutines, whole input %d", len(pd.Goroutines), len(d.Goroutines))
		}
		for i, g := range pd.Goroutines {
			if !reflect.DeepEqual(g, d.Goroutines[i]) {
				t.Fatalf("goroutine %d differs when the input is cut after it:\nprefix %+v\nwhole  %+v", i, g, d.Goroutines[i])
			}
		}
	})
}
