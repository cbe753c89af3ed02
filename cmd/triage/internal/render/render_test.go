package render

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	triagev1 "github.com/triage-sh/triage/proto/triage/v1"
)

func TestBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{47<<20 + 200<<10, "47.2 MiB"}, {2 << 30, "2.0 GiB"}, {3 << 40, "3.0 TiB"}, {1 << 60, "1024.0 PiB"},
	}
	for _, tt := range tests {
		if got := Bytes(tt.n); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {time.Millisecond, "1ms"}, {850 * time.Millisecond, "850ms"}, {time.Second, "1s"}, {4200 * time.Millisecond, "4.2s"},
		{45 * time.Second, "45s"}, {12*time.Minute + 5*time.Second, "12m5s"}, {12 * time.Minute, "12m"},
		{3*time.Hour + 12*time.Minute + 40*time.Second, "3h12m"}, {3 * time.Hour, "3h"},
		{52 * time.Hour, "2d4h"}, {89 * 24 * time.Hour, "89d"}, {-90 * time.Second, "-1m30s"},
	}
	for _, tt := range tests {
		if got := Duration(tt.d); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestSmallHelpers(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct{ got, want string }{
		{Percent(1, 4), "25.0%"},
		{Percent(1, 0), ""},
		{Relative(now.Add(89*24*time.Hour), now), "in 89d"},
		{Relative(now.Add(-3*time.Hour), now), "3h ago"},
		{Relative(now, now), "now"},
		{Plural(1, "binding", "bindings"), "1 binding"},
		{Plural(0, "binding", "bindings"), "0 bindings"},
		{Truncate("abcdef", 4), "abc…"},
		{Truncate("abc", 4), "abc"},
		{Timestamp(time.Time{}), "-"},
		{trimFloat(0.5), "0.5"},
		{trimFloat(2), "2"},
		{BuildLine(nil), "unknown"},
		{BuildLine(&triagev1.Build{Version: "v1"}), "v1"},
		{countsByCount(map[string]uint32{"b": 2, "a": 2, "c": 9}), "c 9, a 2, b 2"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestColorKeepsLayout checks that colour decorates the text and changes
// nothing else: without the escapes, coloured output is the plain output.
func TestColorKeepsLayout(t *testing.T) {
	views := map[string]func(*bytes.Buffer, Style) error{
		"explain": func(b *bytes.Buffer, st Style) error { return Explain(b, fixtureExplain(), fixtureNow, st) },
		"proc":    func(b *bytes.Buffer, st Style) error { return Process(b, fixtureProcess(), ProcessOptions{}, st) },
		"unavail": func(b *bytes.Buffer, st Style) error {
			return Process(b, fixtureProcessUnavailable(), ProcessOptions{}, st)
		},
	}
	for name, view := range views {
		t.Run(name, func(t *testing.T) {
			var plain, colored bytes.Buffer
			if err := view(&plain, Style{}); err != nil {
				t.Fatal(err)
			}
			if err := view(&colored, Style{Color: true}); err != nil {
				t.Fatal(err)
			}
			if !ansi.Match(colored.Bytes()) {
				t.Fatal("colour style wrote no escapes")
			}
			if got := ansi.ReplaceAllString(colored.String(), ""); got != plain.String() {
				t.Errorf("coloured output without escapes differs from plain:\n%s\n---\n%s", got, plain.String())
			}
		})
	}
	var b bytes.Buffer
	if err := Explain(&b, fixtureExplain(), fixtureNow, Style{Color: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\x1b[1;31mCRITICAL\x1b[0m", "\x1b[33mWARNING\x1b[0m", "\x1b[36mINFO\x1b[0m", "\x1b[33moff\x1b[0m", "\x1b[32mon\x1b[0m"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("coloured explain lacks %q", want)
		}
	}
}

func TestFindingsComeFirst(t *testing.T) {
	var b bytes.Buffer
	if err := Explain(&b, fixtureExplain(), fixtureNow, Style{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "FINDINGS (3)\n  CRITICAL fd-near-limit") {
		t.Errorf("explain does not start with the findings:\n%s", b.String())
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errFail }

var errFail = &failErr{}

type failErr struct{}

func (*failErr) Error() string { return "broken pipe" }

func TestWriteErrorsReported(t *testing.T) {
	views := map[string]func() error{
		"explain": func() error { return Explain(failingWriter{}, fixtureExplain(), fixtureNow, Style{}) },
		"list": func() error {
			return Processes(failingWriter{}, &triagev1.ListProcessesResponse{Processes: fixtureSummaries()}, Style{})
		},
		"proc": func() error { return Process(failingWriter{}, fixtureProcess(), ProcessOptions{}, Style{}) },
		"json": func() error { return JSON(failingWriter{}, fixtureProcess()) },
	}
	for name, view := range views {
		if err := view(); err == nil || !strings.Contains(err.Error(), "broken pipe") {
			t.Errorf("%s: error = %v, want the write error", name, err)
		}
	}
}
