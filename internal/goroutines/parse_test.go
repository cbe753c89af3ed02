package goroutines

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func TestParseHeaders(t *testing.T) {
	for _, tc := range []struct {
		line   string
		id     int64
		state  string
		wait   time.Duration
		locked bool
		labels map[string]string
		extra  []string
	}{
		{line: "goroutine 1 [running]:", id: 1, state: "running"},
		{line: "goroutine 18 [chan receive, 5 minutes]:", id: 18, state: "chan receive", wait: 5 * time.Minute},
		{line: "goroutine 7 [sleep, locked to thread]:", id: 7, state: "sleep", locked: true},
		{line: "goroutine 9 [IO wait, 1 minutes, locked to thread]:", id: 9, state: "IO wait", wait: time.Minute, locked: true},
		{line: "goroutine 84 gp=0xee9de45c1e0 m=3 mp=0xee9de019008 [flushing proc caches]:", id: 84, state: "flushing proc caches"},
		{line: "goroutine 5 gp=0x1 m=nil [select (no cases)]:", id: 5, state: "select (no cases)"},
		{line: "goroutine 3 [chan send (scan), 2 minutes, synctest bubble 4]:", id: 3, state: "chan send", wait: 2 * time.Minute, extra: []string{"(scan)", "synctest bubble 4"}},
		{line: "goroutine 4 [sync.WaitGroup.Wait (leaked)]:", id: 4, state: "sync.WaitGroup.Wait", extra: []string{"(leaked)"}},
		{line: `goroutine 6 [select, 3 minutes labels:{"k": "v, ]", "x": "y"}]:`, id: 6, state: "select", wait: 3 * time.Minute, labels: map[string]string{"k": "v, ]", "x": "y"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			d := mustParse(t, tc.line+"\nmain.f()\n\t/a.go:1 +0x1\n")
			if len(d.Goroutines) != 1 {
				t.Fatalf("got %d goroutines", len(d.Goroutines))
			}
			g := d.Goroutines[0]
			if g.ID != tc.id || g.State != tc.state || g.Wait != tc.wait || g.LockedToThread != tc.locked ||
				!equalMaps(g.Labels, tc.labels) || strings.Join(g.Extra, "|") != strings.Join(tc.extra, "|") || len(g.Frames) != 1 {
				t.Errorf("got %+v", g)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestParseFrames(t *testing.T) {
	d := mustParse(t, `goroutine 1 [running]:
main.(*T[...]).Method(0xc000010018, {0x1, 0x2})
	/src/a.go:10 +0x1d
os/exec.*closeOnce.(os/exec.close)·fm()
	/usr/local/go/src/os/exec/exec.go:444 +0x34
main.inlined(...)
	/src/b.go:20
runtime.goexit({})
	C:/Program Files/Go/src/runtime/asm_amd64.s:1700 +0x1 fp=0xc0 sp=0xc8 pc=0x46e0e1
`)
	fs := d.Goroutines[0].Frames
	if len(fs) != 4 {
		t.Fatalf("got %d frames", len(fs))
	}
	want := []Frame{
		{Function: "main.(*T[...]).Method", Args: "0xc000010018, {0x1, 0x2}", File: "/src/a.go", Line: 10, Offset: 0x1d},
		{Function: "os/exec.*closeOnce.(os/exec.close)·fm", File: "/usr/local/go/src/os/exec/exec.go", Line: 444, Offset: 0x34},
		{Function: "main.inlined", Args: "...", File: "/src/b.go", Line: 20},
		{Function: "runtime.goexit", Args: "{}", File: "C:/Program Files/Go/src/runtime/asm_amd64.s", Line: 1700, Offset: 1, PC: 0x46e0e1},
	}
	for i := range want {
		if fs[i] != want[i] {
			t.Errorf("frame %d = %+v, want %+v", i, fs[i], want[i])
		}
	}
}

func TestParseJunkAndCrashes(t *testing.T) {
	d := mustParse(t, "=== RUN   TestX\n2024/01/01 12:00:00 starting (pid 1)\n"+
		"panic: runtime error: invalid memory address or nil pointer dereference [recovered]\n"+
		"\tpanic: again\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x1]\n\n"+
		"goroutine 6 [running]:\n"+
		"0x00007ffeefbfee48:  0x01007ffeefbfee68 <runtime.throw+0x71>\n"+
		"main.f(0x0)\n\t/a.go:3 +0x1\nlog line (not a frame)\nmain.main()\n\t/a.go:9 +0x2\n\nexit status 2\nFAIL\tpkg\t0.1s\n")
	if d.Format != FormatPanic || d.Header != "runtime error: invalid memory address or nil pointer dereference [recovered]\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x1]" {
		t.Errorf("format %q header %q", d.Format, d.Header)
	}
	if d.Total != 1 || len(d.Goroutines[0].Frames) != 2 || d.Goroutines[0].Frames[1].Function != "main.main" {
		t.Errorf("goroutines: %+v", d.Goroutines)
	}
	sig := mustParse(t, "SIGQUIT: quit\nPC=0x46d5e1 m=0 sigcode=0\n\ngoroutine 0 gp=0x1 m=0 mp=0x2 [idle]:\nruntime.futex(0x1)\n\truntime/sys_linux_amd64.s:557 +0x21\n")
	if sig.Format != FormatSignal || sig.Header != "SIGQUIT: quit" || sig.Total != 1 {
		t.Errorf("signal dump: %q %q %d", sig.Format, sig.Header, sig.Total)
	}
	// A crash message alone (GOTRACEBACK=none) is recognised.
	if d := mustParse(t, "fatal error: all goroutines are asleep - deadlock!\n"); d.Format != FormatFatal || d.Total != 0 {
		t.Errorf("bare fatal: %+v", d)
	}
}

func TestParseNoDump(t *testing.T) {
	for _, in := range []string{"", "\n\n", "hello world\n", "main.main()\n\t/a.go:1\n", `{"Stack0": [1, 2]}`, "goroutine x [running]:\n"} {
		d, err := Parse(strings.NewReader(in))
		if !errors.Is(err, ErrNoDump) || d != nil {
			t.Errorf("Parse(%q) = %v, %v; want ErrNoDump", in, d, err)
		}
	}
	// Read errors are wrapped, not reported as "no dump".
	_, err := Parse(iotest.ErrReader(io.ErrUnexpectedEOF))
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrNoDump) {
		t.Errorf("read error = %v", err)
	}
}

func TestParseTruncated(t *testing.T) {
	full := "goroutine 1 [running]:\nmain.a()\n\t/a.go:1 +0x1\ncreated by main.main in goroutine 7\n\t/a.go:2 +0x2\n"
	for cut, want := range map[int]struct {
		frames  int
		created string
		partial bool
	}{
		len("goroutine 1 [running]:\n"):           {0, "", false},
		len("goroutine 1 [running]:\nmain.a()\n"): {1, "", true},
		len("goroutine 1 [running]:\nmain.a()\n\t/a.go:1 +0x1\ncreated by main.main in goroutine 7\n"): {1, "main.main", true},
		len(full): {1, "main.main", false},
	} {
		d := mustParse(t, full[:cut])
		g := d.Goroutines[0]
		created := ""
		if g.CreatedBy != nil {
			created = g.CreatedBy.Function
		}
		if len(g.Frames) != want.frames || created != want.created || d.Partial != want.partial {
			t.Errorf("cut at %d: %d frames, created by %q, partial %v; want %+v", cut, len(g.Frames), created, d.Partial, want)
		}
	}
	if d := mustParse(t, "goroutine profile: total 5\n2 @ 0x1\n#\t0x1\tmain.a+0x1\t/a.go:1\n"); !d.Partial || d.Total != 2 {
		t.Errorf("short debug=1: partial %v total %d", d.Partial, d.Total)
	}
}

func TestParseLongLinesAndCRLF(t *testing.T) {
	long := strings.Repeat("x", maxLineLen+10)
	mid := "main.f(" + strings.Repeat("0x1, ", 5000) + "0x2)" // longer than the read buffer, within maxLineLen
	in := "goroutine 1 [running]:\r\n" + long + "\r\n" + mid + "\r\n\t/a.go:1 +0x1\r\n" + "main.main()\r\n\t/a.go:2 +0x1\r\n"
	d := mustParse(t, in)
	fs := d.Goroutines[0].Frames
	if len(fs) != 2 || fs[0].Function != "main.f" || fs[1].File != "/a.go" || fs[1].Line != 2 {
		t.Errorf("frames = %d %+v", len(fs), fs)
	}
	// Parse streams: a one-byte reader gives the same result.
	d2, err := Parse(iotest.OneByteReader(strings.NewReader(in)))
	if err != nil || len(d2.Goroutines[0].Frames) != 2 {
		t.Errorf("one-byte reader: %v %v", d2, err)
	}
}

var (
	benchOnce sync.Once
	benchDump []byte
)

// BenchmarkParse parses a synthetic debug=2 dump of 100,000 goroutines in
// mixed states with stacks 5 to 20 frames deep, then groups it.
func BenchmarkParse(b *testing.B) {
	benchOnce.Do(func() {
		var buf bytes.Buffer
		if _, err := writeSynthetic(&buf, 100_000, synthTemplates(300), 1); err != nil {
			b.Fatal(err)
		}
		benchDump = buf.Bytes()
	})
	b.SetBytes(int64(len(benchDump)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d, err := Parse(bytes.NewReader(benchDump))
		if err != nil {
			b.Fatal(err)
		}
		if d.Total != 100_000 {
			b.Fatalf("total %d", d.Total)
		}
	}
}

func BenchmarkGroup(b *testing.B) {
	var buf bytes.Buffer
	if _, err := writeSynthetic(&buf, 100_000, synthTemplates(300), 1); err != nil {
		b.Fatal(err)
	}
	d, err := Parse(&buf)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if gs := d.Group(GroupOptions{}); len(gs) != 300 {
			b.Fatalf("%d groups", len(gs))
		}
	}
}

func TestParseRaceReport(t *testing.T) {
	report := "==================\nWARNING: DATA RACE\nRead at 0x00c000 by goroutine 7:\n  main.f()\n      /a.go:1 +0x1\n\nGoroutine 7 (running) created at:\n  main.main()\n      /a.go:9 +0x2\n==================\n"
	d := mustParse(t, report)
	if d.Format != FormatRace || d.Header != "WARNING: DATA RACE" || d.Total != 0 {
		t.Errorf("race alone: %+v", d)
	}
	// A race report followed by the test's panic: the goroutines are parsed,
	// the race stacks are not.
	d = mustParse(t, report+"panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/a.go:3 +0x1\n")
	if d.Format != FormatPanic || d.Header != "boom" || d.Total != 1 || d.Goroutines[0].ID != 1 {
		t.Errorf("race then panic: %+v", d)
	}
	// A report cut before its closing line does not swallow the dump after it.
	cut := strings.TrimSuffix(report, "==================\n")
	d = mustParse(t, cut+"goroutine 3 [select]:\nmain.g()\n\t/a.go:4 +0x1\n")
	if d.Format != FormatDebug2 || d.Header != "WARNING: DATA RACE" || d.Total != 1 || d.Goroutines[0].State != "select" {
		t.Errorf("cut race then dump: %+v", d)
	}
}
