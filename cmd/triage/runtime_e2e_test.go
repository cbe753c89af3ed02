package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

// goroutinesJSON is the contract of `triage goroutines -o json`.
type goroutinesJSON struct {
	Total   *int64 `json:"total"`
	Matched int64  `json:"matched"`
	Path    string `json:"path"`
	Source  string `json:"source"`
	Format  string `json:"format"`
	File    string `json:"file"`
	Notes   []string
	Groups  []struct {
		Count  *int64  `json:"count"`
		State  *string `json:"state"`
		Frames []struct {
			Function *string `json:"function"`
			File     *string `json:"file"`
			Line     *int64  `json:"line"`
		} `json:"frames"`
	} `json:"groups"`
}

// decodeGoroutines decodes the JSON and checks every contract field is
// present: total, and each group's count, state and frames with function,
// file and line.
func decodeGoroutines(t *testing.T, out string) goroutinesJSON {
	t.Helper()
	var g goroutinesJSON
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&g); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%.300s", err, out)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value")
	}
	if g.Total == nil || g.Groups == nil {
		t.Fatalf("JSON lacks total or groups:\n%.300s", out)
	}
	var sum int64
	for i, gr := range g.Groups {
		if gr.Count == nil || gr.State == nil || len(gr.Frames) == 0 {
			t.Fatalf("group %d lacks count, state or frames: %+v", i, gr)
		}
		sum += *gr.Count
		for j, f := range gr.Frames {
			if f.Function == nil || f.File == nil || f.Line == nil || *f.Function == "" {
				t.Fatalf("group %d frame %d lacks function, file or line", i, j)
			}
		}
	}
	if sum != g.Matched {
		t.Errorf("groups hold %d goroutines, matched says %d", sum, g.Matched)
	}
	return g
}

func TestGoroutinesLive(t *testing.T) {
	fake, addr, dev := startFakeRuntime(t)
	cli := func(args ...string) result {
		return runWith(t, "", false, append([]string{"--dev", dev, "--addr", addr}, args...)...)
	}
	ok := func(t *testing.T, r result) {
		t.Helper()
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	}

	t.Run("text", func(t *testing.T) {
		r := cli("goroutines", "--target", "app", "--path", "text", "--min-wait", "2m", "--filter", "main\\.")
		ok(t, r)
		for _, want := range []string{
			"44 goroutines in 3 groups · path text · agent pid 7 · collected in 3ms at 2026-03-01 14:00:00Z\n",
			"note: fake: the text path was used\n",
			"\n40 goroutines  chan receive  waiting 3m\n  runtime.gopark\n      /usr/local/go/src/runtime/proc.go:435\n  main.leak\n      /app/leak.go:10\n  created by main.start\n      /app/main.go:30\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
		if i, j := strings.Index(r.stdout, "40 goroutines"), strings.Index(r.stdout, "3 goroutines"); i < 0 || j < i {
			t.Errorf("groups are not largest first:\n%s", r.stdout)
		}
		got := fake.lastGoroutines()
		if got.GetTarget() != triagev1.Target_TARGET_APP || got.GetPath() != triagev1.GoroutinePath_GOROUTINE_PATH_TEXT ||
			got.GetFilter() != "main\\." || got.GetMinWait().AsDuration() != 2*time.Minute {
			t.Errorf("request = %v", got)
		}
	})

	t.Run("json is the contract and equals --file of the same dump", func(t *testing.T) {
		r := cli("goroutines", "-o", "json")
		ok(t, r)
		g := decodeGoroutines(t, r.stdout)
		if *g.Total != 44 || len(g.Groups) != 3 || *g.Groups[0].Count != 40 || *g.Groups[0].State != "chan receive" ||
			*g.Groups[0].Frames[1].Function != "main.leak" || *g.Groups[0].Frames[1].Line != 10 || g.Path != "text" || g.Source != "agent" {
			t.Errorf("JSON = %s", r.stdout)
		}
		dump := filepath.Join(t.TempDir(), "dump.txt")
		writeFile(t, dump, fakeDump)
		fr := cli("goroutines", "--file", dump, "-o", "json")
		ok(t, fr)
		if live, file := groupsJSON(t, r.stdout), groupsJSON(t, fr.stdout); live != file {
			t.Errorf("live and --file groups differ:\n%s\n---\n%s", live, file)
		}
	})

	t.Run("server error is one line, exit 1", func(t *testing.T) {
		r := cli("goroutines", "--filter", "busy")
		if r.code != exitError {
			t.Errorf("exit %d, want %d", r.code, exitError)
		}
		oneErrorLine(t, r, "triage: get goroutines: ResourceExhausted: a goroutine dump of this target is already running")
		if r.stdout != "" {
			t.Errorf("stdout = %q", r.stdout)
		}
	})

	t.Run("raw to stdout and to --save", func(t *testing.T) {
		r := cli("goroutines", "--raw")
		ok(t, r)
		if r.stdout != fakeDump {
			t.Errorf("raw dump differs: got %d bytes, want %d", len(r.stdout), len(fakeDump))
		}
		path := filepath.Join(t.TempDir(), "dump.txt")
		r = cli("goroutines", "--raw", "--save", path)
		ok(t, r)
		if got := readFile(t, path); got != fakeDump {
			t.Errorf("saved raw dump differs: %d bytes, want %d", len(got), len(fakeDump))
		}
		if !strings.Contains(r.stdout, "wrote the goroutine dump to "+path) {
			t.Errorf("stdout = %q", r.stdout)
		}
		noFile(t, path+".tmp")
	})

	t.Run("save then diff: the leak grew", func(t *testing.T) {
		dir := t.TempDir()
		before := filepath.Join(dir, "before.txt")
		// Earlier: 10 leakers, the same 3 workers, and 5 goroutines that are gone now.
		writeFile(t, before, synthDump(3, "leak", 10, "worker", 3, "gone", 5))
		saved := filepath.Join(dir, "before.json")
		r := cli("goroutines", "--file", before, "--save", saved)
		ok(t, r)
		if !strings.HasPrefix(r.stdout, "18 goroutines in 3 groups") {
			t.Errorf("stdout = %.100q", r.stdout)
		}
		// The saved file is the -o json document.
		decodeGoroutines(t, readFile(t, saved))

		r = cli("goroutines", "--diff", saved)
		ok(t, r)
		for _, want := range []string{
			"18 → 44 goroutines (+26) · groups: 1 grew, 1 new, 0 shrank, 1 vanished, 1 unchanged\n",
			"\n+30 grew (10 → 40)  chan receive  waiting 3m\n  runtime.gopark\n      /usr/local/go/src/runtime/proc.go:435\n  main.leak\n",
			"\n+1 new (0 → 1)  chan receive",
			"\n-5 vanished (5 → 0)  chan receive  waiting 3m\n  runtime.gopark\n      /usr/local/go/src/runtime/proc.go:435\n  main.gone\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("diff lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "main.worker\n") {
			t.Errorf("the unchanged group is shown:\n%s", r.stdout)
		}

		// A text dump as "before" gives the same result, as JSON.
		r = cli("goroutines", "--diff", before, "-o", "json")
		ok(t, r)
		var d struct {
			BeforeTotal, AfterTotal int64
			Unchanged               int `json:"unchanged"`
			Deltas                  []struct {
				Status                string
				Before, After, Change int64
				Group                 struct {
					Frames []struct{ Function string }
				}
			} `json:"deltas"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range d.Deltas {
			got = append(got, x.Status+" "+x.Group.Frames[1].Function+" "+strconv.FormatInt(x.Change, 10))
		}
		if strings.Join(got, ", ") != "grew main.leak 30, new main.poll 1, vanished main.gone -5" || d.Unchanged != 1 {
			t.Errorf("deltas = %v, unchanged %d\n%s", got, d.Unchanged, r.stdout)
		}
	})
}

// groupsJSON is the groups array of a goroutines document, re-encoded.
func groupsJSON(t *testing.T, doc string) string {
	t.Helper()
	var d struct {
		Groups json.RawMessage `json:"groups"`
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatal(err)
	}
	return string(d.Groups)
}

func TestProfileLive(t *testing.T) {
	fake, addr, dev := startFakeRuntime(t)
	cli := func(terminal bool, args ...string) result {
		return runWith(t, "", terminal, append([]string{"--dev", dev, "--addr", addr}, args...)...)
	}
	want := strings.Join(fakeProfile, "")

	t.Run("cpu to a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cpu.pprof")
		r := cli(false, "profile", "--type", "cpu", "-w", path)
		if r.code != exitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if got := readFile(t, path); got != want {
			t.Errorf("file = %q, want %q", got, want)
		}
		noFile(t, path+".tmp")
		if !strings.Contains(r.stdout, "wrote the cpu profile to "+path+" (18 B, 10s)\n") || !strings.Contains(r.stdout, "open it with: go tool pprof -http=: "+path+"\n") {
			t.Errorf("stdout = %q", r.stdout)
		}
		if !strings.Contains(r.stderr, "note: fake: sampled 1 goroutine in 10 to stay cheap\n") || !strings.Contains(r.stderr, "cpu profile: ") || strings.Contains(r.stderr, "\r") {
			t.Errorf("stderr off a terminal = %q, want a final line and the notes, no \\r", r.stderr)
		}
		got := fake.lastProfile()
		if got.GetType() != triagev1.ProfileType_PROFILE_TYPE_CPU || got.GetDuration().AsDuration() != defaultProfileDuration {
			t.Errorf("request = %v, want cpu for the default duration", got)
		}
	})

	t.Run("trace --last with a window, progress on a terminal", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.trace")
		r := cli(true, "profile", "--type", "trace", "--last", "5s", "--rate", "3", "--target", "self", "-w", path)
		if r.code != exitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "open it with: go tool trace "+path) {
			t.Errorf("stdout = %q", r.stdout)
		}
		if !strings.Contains(r.stderr, "\r\x1b[Ktrace: ") || !regexp.MustCompile(`trace: [^\r]*18 B received\n`).MatchString(r.stderr) {
			t.Errorf("stderr on a terminal = %q, want a live line and a final one", r.stderr)
		}
		got := fake.lastProfile()
		if !got.GetLast() || got.GetDuration().AsDuration() != 5*time.Second || got.GetRate() != 3 || got.GetTarget() != triagev1.Target_TARGET_SELF {
			t.Errorf("request = %v", got)
		}
	})

	t.Run("heap to stdout sends no duration", func(t *testing.T) {
		r := cli(false, "profile", "--type", "heap", "-w", "-")
		if r.code != exitOK || r.stdout != want {
			t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if got := fake.lastProfile(); got.GetDuration() != nil {
			t.Errorf("heap request has a duration: %v", got)
		}
	})

	t.Run("json", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "wall.pprof")
		r := cli(false, "profile", "--type", "wall", "--duration", "2s", "-w", path, "-o", "json")
		if r.code != exitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var got struct {
			File    string `json:"file"`
			Bytes   int64  `json:"bytes"`
			Open    string `json:"open"`
			Trailer struct {
				Notes []string `json:"notes"`
			} `json:"trailer"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if got.File != path || got.Bytes != 18 || got.Open != "go tool pprof -http=: "+path || len(got.Trailer.Notes) != 1 {
			t.Errorf("JSON = %s", r.stdout)
		}
	})

	for _, tt := range []struct {
		name, typ, rate, prefix string
	}{
		{"busy: ResourceExhausted", "cpu", "7", "triage: profile cpu: ResourceExhausted: a cpu profile of this target is already running"},
		{"stream breaks midway", "mutex", "0", "triage: profile mutex: Unavailable: agent went away"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.pprof")
			r := cli(false, "profile", "--type", tt.typ, "--rate", tt.rate, "-w", path)
			if r.code != exitError {
				t.Errorf("exit %d, want %d", r.code, exitError)
			}
			oneErrorLine(t, r, tt.prefix)
			noFile(t, path)
			noFile(t, path+".tmp")
			if r.stdout != "" {
				t.Errorf("stdout = %q", r.stdout)
			}
		})
	}
}

func TestRuntimeLive(t *testing.T) {
	_, addr, dev := startFakeRuntime(t)
	cli := func(args ...string) result {
		return runWith(t, "", false, append([]string{"--dev", dev, "--addr", addr}, args...)...)
	}
	r := cli("runtime", "--target", "self")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"GO RUNTIME (self, pid 31)\n", "  gomaxprocs     4 (8 CPUs)\n", "  gc pause       p50 80µs, p99 400µs\n", "  goroutines     44\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("runtime lacks %q:\n%s", want, r.stdout)
		}
	}
	r = cli("runtime", "-o", "json")
	var got struct {
		GoVersion string             `json:"go_version"`
		Metrics   map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.GoVersion != "go1.26.8" || got.Metrics["/gc/cycles/total:gc-cycles"] != 12 {
		t.Errorf("runtime JSON (%v) = %s", err, r.stdout)
	}
	r = cli("runtime", "--target", "app")
	if r.code != exitError {
		t.Errorf("exit %d, want 1", r.code)
	}
	oneErrorLine(t, r, "triage: get runtime stats: FailedPrecondition: no app agent configured")
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists (or %v), want it absent", path, err)
	}
}
