package render

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// TestGoroutineDocRoundTrip checks that a group survives the JSON
// document: what --save writes, --diff reads back unchanged.
func TestGoroutineDocRoundTrip(t *testing.T) {
	v := fixtureGoroutines()
	var b bytes.Buffer
	if err := WriteGoroutineDoc(&b, GoroutineDocument(v)); err != nil {
		t.Fatal(err)
	}
	d, err := ReadGoroutineDoc(&b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Total != 1240 || d.Matched != 1240 || d.Path != "text" || d.Source != "agent" || d.Time != "2026-03-01T14:00:00Z" || len(d.Groups) != len(v.Groups) {
		t.Fatalf("document = %+v", d)
	}
	for i, g := range d.Groups {
		if got := g.Proto(); !proto.Equal(got, v.Groups[i]) {
			t.Errorf("group %d:\n got %v\nwant %v", i, got, v.Groups[i])
		}
	}
}

// TestGoroutineDocNumbers checks the contract's numbers are JSON numbers,
// not the strings protojson makes of int64.
func TestGoroutineDocNumbers(t *testing.T) {
	var b bytes.Buffer
	if err := WriteGoroutineDoc(&b, GoroutineDocument(fixtureGoroutines())); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Total  any `json:"total"`
		Groups []struct {
			Count  any `json:"count"`
			Frames []struct {
				Line any `json:"line"`
			} `json:"frames"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(b.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{"total": raw.Total, "count": raw.Groups[0].Count, "line": raw.Groups[0].Frames[0].Line} {
		if _, ok := v.(float64); !ok {
			t.Errorf("%s = %#v, want a JSON number", name, v)
		}
	}
}

func TestReadGoroutineDocRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":      "goroutine 1 [running]:",
		"no groups":     `{"total": 3}`,
		"zero count":    `{"total": 3, "groups": [{"count": 0, "state": "x", "frames": []}]}`,
		"string count":  `{"total": 3, "groups": [{"count": "3"}]}`,
		"explain json":  `{"build": {"version": "v1"}}`,
		"truncated doc": `{"total": 3, "groups": [`,
	} {
		if _, err := ReadGoroutineDoc(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestGoroutineViewsColorAndErrors(t *testing.T) {
	views := map[string]func(*bytes.Buffer, Style) error{
		"goroutines": func(b *bytes.Buffer, st Style) error {
			return Goroutines(b, fixtureGoroutines(), GoroutineOptions{}, st)
		},
		"diff":    func(b *bytes.Buffer, st Style) error { return GoroutineDiff(b, fixtureDiff(), GoroutineOptions{}, st) },
		"runtime": func(b *bytes.Buffer, st Style) error { return Runtime(b, fixtureRuntimeGops(), st) },
		"app":     func(b *bytes.Buffer, st Style) error { return Explain(b, fixtureExplainApp(), fixtureNow, st) },
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
	fails := map[string]func() error{
		"goroutines": func() error { return Goroutines(failingWriter{}, fixtureGoroutines(), GoroutineOptions{}, Style{}) },
		"diff":       func() error { return GoroutineDiff(failingWriter{}, fixtureDiff(), GoroutineOptions{}, Style{}) },
		"runtime":    func() error { return Runtime(failingWriter{}, fixtureRuntime(), Style{}) },
		"doc":        func() error { return WriteGoroutineDoc(failingWriter{}, GoroutineDocument(fixtureGoroutines())) },
	}
	for name, f := range fails {
		if err := f(); err == nil || !strings.Contains(err.Error(), "broken pipe") {
			t.Errorf("%s: error = %v, want the write error", name, err)
		}
	}
}

func TestLatency(t *testing.T) {
	for d, want := range map[int64]string{0: "0s", 850: "850ns", 120_000: "120µs", 2_300_000: "2.3ms", 15_000_000: "15ms", 4_200_000_000: "4.2s"} {
		if got := Latency(time.Duration(d)); got != want {
			t.Errorf("Latency(%d) = %q, want %q", d, got, want)
		}
	}
}
