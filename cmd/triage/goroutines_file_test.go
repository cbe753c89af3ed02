package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fixturesDir is ../shared/fixtures/goroutines relative to the module
// root; tests that need it skip when it is absent. Fixtures are read in
// place, never copied into the repository.
func fixturesDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	fixtures := filepath.Join(dir, "..", "shared", "fixtures", "goroutines")
	if _, err := os.Stat(fixtures); err != nil {
		t.Skipf("goroutine dump fixtures not found at ../shared/fixtures/goroutines (relative to the module root, %s): %v", fixtures, err)
	}
	return fixtures
}

// goroutineHeader is the first line of each goroutine in a debug=2 dump,
// counted independently of the parser.
var goroutineHeader = regexp.MustCompile(`(?m)^goroutine \d+ \[`)

// TestGoroutinesFileFixtures runs --file -o json on real debug=2 dumps and
// checks the contract: total is the number of goroutines in the file,
// every group has count, state and frames with function, file and line.
func TestGoroutinesFileFixtures(t *testing.T) {
	dir := fixturesDir(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.Contains(name, "debug2") && !strings.HasSuffix(name, "runtime.stack.txt") {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			text := readFile(t, path)
			want := int64(len(goroutineHeader.FindAllString(text, -1)))
			r := runWith(t, "", false, "goroutines", "--file", path, "-o", "json")
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			g := decodeGoroutines(t, r.stdout)
			if *g.Total != want || g.Matched != want {
				t.Errorf("total %d, matched %d; the file has %d goroutines", *g.Total, g.Matched, want)
			}
			if g.Source != "file" || g.Format != "debug2" {
				t.Errorf("source %q, format %q; want file, debug2", g.Source, g.Format)
			}
			for i, gr := range g.Groups {
				if *gr.State == "" {
					t.Errorf("group %d has no state; debug=2 dumps have one", i)
				}
			}

			// The text view of the same file names every group's count.
			r = runWith(t, "", false, "goroutines", "--file", path)
			if r.code != exitOK || !strings.HasPrefix(r.stdout, fmt.Sprintf("%d goroutine", want)) {
				t.Errorf("text view: exit %d, starts %.80q", r.code, r.stdout)
			}
		})
	}
	if n == 0 {
		t.Fatalf("no debug2 fixture in %s", dir)
	}
}

// TestGoroutinesFileLocal checks --file needs no sidecar, reads stdin,
// applies --filter and --min-wait, and fails with one line on bad input.
func TestGoroutinesFileLocal(t *testing.T) {
	// Nothing listens there: --file must not dial.
	base := []string{"--addr", closedAddr(t), "--insecure", "goroutines"}
	cli := func(stdin string, args ...string) result { return runWith(t, stdin, false, append(base, args...)...) }
	dump := synthDump(3, "leak", 5, "worker", 2) + synthDump(0, "fresh", 4)

	r := cli(dump, "--file", "-", "-o", "json")
	g := decodeGoroutines(t, r.stdout)
	if r.code != exitOK || *g.Total != 11 || len(g.Groups) != 3 || *g.Groups[0].Count != 5 || g.File != "-" {
		t.Errorf("stdin: exit %d, %s", r.code, r.stdout)
	}

	r = cli(dump, "--file", "-", "--filter", `main\.(leak|fresh)$`, "-o", "json")
	g = decodeGoroutines(t, r.stdout)
	if *g.Total != 11 || g.Matched != 9 || len(g.Groups) != 2 {
		t.Errorf("--filter: total %d, matched %d, %d groups; want 11, 9, 2", *g.Total, g.Matched, len(g.Groups))
	}

	r = cli(dump, "--file", "-", "--min-wait", "2m")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "7 of 11 goroutines match, in 2 groups · file - (debug2)\n") {
		t.Errorf("--min-wait: exit %d:\n%s", r.code, r.stdout)
	}
	if strings.Contains(r.stdout, "main.fresh") {
		t.Errorf("--min-wait kept goroutines waiting under a minute:\n%s", r.stdout)
	}

	missing := filepath.Join(t.TempDir(), "nope.txt")
	notDump, badJSON := writeTemp(t, "log line\n"), writeTemp(t, `{"total": 3}`)
	for name, tt := range map[string]struct {
		stdin  string
		args   []string
		prefix string
	}{
		"missing file":    {"", []string{"--file", missing}, "triage: read dump: open " + missing},
		"not a dump":      {"hello\nworld\n", []string{"--file", "-"}, "triage: stdin: parsing goroutine dump: no goroutine dump found in input"},
		"missing diff":    {dump, []string{"--file", "-", "--diff", missing}, "triage: read --diff file: open " + missing},
		"diff not a dump": {dump, []string{"--file", "-", "--diff", notDump}, "triage: " + notDump + ": not a saved goroutines JSON and parsing goroutine dump: no goroutine dump found"},
		"diff bad json":   {dump, []string{"--file", "-", "--diff", badJSON}, "triage: " + badJSON + `: decode goroutines JSON: no "groups" array`},
		"save unwritable": {dump, []string{"--file", "-", "--save", filepath.Join(missing, "x.json")}, "triage: create output: "},
	} {
		t.Run(name, func(t *testing.T) {
			r := cli(tt.stdin, tt.args...)
			if r.code != exitError {
				t.Errorf("exit %d, want %d", r.code, exitError)
			}
			oneErrorLine(t, r, tt.prefix)
			if r.stdout != "" {
				t.Errorf("stdout = %.100q", r.stdout)
			}
		})
	}
}

// writeTemp writes data to a new file and returns its path.
func writeTemp(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	writeFile(t, path, data)
	return path
}
